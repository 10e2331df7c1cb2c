package tests

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The hostile module of issue 12: a handler that keeps 60 MB strings in a
// module-level table until its deadline. Thirteen requests took ~600 MB
// each and the process died. Now each is cut off ("memory limit exceeded",
// 500), the module is restarted when its state holds too much, it keeps
// answering, and the process stays under twice its memory_limit.
func TestHostileMemoryStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocates several GB over a few seconds")
	}
	const limit = 1 << 30
	s := startReloadServer(t, map[string]string{
		"luahost.yaml": "server_name: example.org\nmemory_limit: 1GiB\nmodules:\n  - module: fill.lua\n    timeout: 10s\n",
		"fill.lua": `local keep = {}
return { new = function(c, api)
  api.register_web_resource("/_synapse/client/fill", function(req)
    for i = 1, 1e9 do keep[#keep + 1] = ("x"):rep(60e6) .. i end
  end)
  api.register_web_resource("/_synapse/client/ping", function(req)
    return { json = { kept = #keep } }
  end)
end }`,
	})
	// Sample the process's RSS all along, not only between requests.
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if rss, ok := rssOf(s.cmd.Process.Pid); ok && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	for i := 0; i < 13; i++ {
		code, body := s.get("/_synapse/client/fill")
		if code != 500 {
			close(stop)
			t.Fatalf("request %d: %d %s; want 500 (memory limit exceeded)", i, code, body)
		}
	}
	close(stop)
	<-sampled
	if !strings.Contains(s.log(), "memory limit exceeded") {
		t.Errorf("the log does not say why the requests failed:\n%s", s.log())
	}
	if !strings.Contains(s.log(), "over its memory limit; restarting") {
		t.Errorf("the module was never restarted for holding too much:\n%s", s.log())
	}
	if code, body := s.get("/_synapse/client/ping"); code != 200 {
		t.Errorf("the module stopped serving: %d %s", code, body)
	}
	if p := peak.Load(); p > 2*limit {
		t.Errorf("resident memory peaked at %d MiB, over twice memory_limit (%d MiB)", p>>20, 2*limit>>20)
	} else {
		t.Logf("peak RSS %d MiB with memory_limit 1 GiB", p>>20)
	}
}

// rssOf reads a process's resident set size.
func rssOf(pid int) (int64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
