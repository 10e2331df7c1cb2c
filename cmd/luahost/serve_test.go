package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// http-until STATUS METHOD PATH polls $ADDR until PATH answers STATUS (for
// up to startTimeout), for what happens after a file changes: the server
// notices in its own time.
func cmdHTTPUntil(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: http-until STATUS METHOD PATH")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: httpTimeout}
	deadline := time.Now().Add(startTimeout)
	last := 0
	for time.Now().Before(deadline) {
		req, err := http.NewRequest(args[1], "http://"+ts.Getenv("ADDR")+args[2], nil)
		ts.Check(err)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			last = resp.StatusCode
			if last == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("http-until: %s %s answered %d, not %d, for %v", args[1], args[2], last, want, startTimeout)
}
