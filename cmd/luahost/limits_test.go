package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/luahost/luahost/engine"
)

// startServer runs serveHTTP on a loopback port with limits; the
// returned function stops it.
func startServer(t *testing.T, limits engine.HTTPServerConfig, h http.Handler) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveHTTP(ctx, h, ln, limits, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveHTTP: %v", err)
		}
	})
	return ln.Addr().String()
}

func testLimits() engine.HTTPServerConfig {
	cfg, err := engine.ParseConfig([]byte("modules: []\n"), "t.yaml")
	if err != nil {
		panic(err)
	}
	return cfg.HTTPServer
}

var readBody = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "slow body", http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "read %d bytes", len(b))
})

// closedWithin reads from c until the server closes it or wait passes,
// and reports how long that took (wait if it did not close).
func closedWithin(c net.Conn, wait time.Duration) (time.Duration, bool) {
	start := time.Now()
	c.SetReadDeadline(start.Add(wait))
	_, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return took, false
	}
	return took, true
}

// A POST whose body trickles in (a byte every 100 ms, 30 s in all) is cut
// off by the read timeout; before, it held its connection indefinitely.
func TestTricklingBodyIsCutOff(t *testing.T) {
	limits := testLimits()
	limits.ReadTimeout = 500 * time.Millisecond
	addr := startServer(t, limits, readBody)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < 300; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	took, closed := closedWithin(c, 10*time.Second)
	if !closed {
		t.Fatalf("the trickling request still held its connection after %s", took)
	}
	t.Logf("closed %s after the request began (read timeout 500ms)", took.Round(time.Millisecond))
}

// An idle keep-alive connection is closed after the idle timeout.
func TestIdleKeepAliveIsClosed(t *testing.T) {
	limits := testLimits()
	limits.IdleTimeout = 300 * time.Millisecond
	addr := startServer(t, limits, readBody)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took, closed := closedWithin(c, 10*time.Second)
	if !closed {
		t.Fatalf("the idle keep-alive connection was still open after %s", took)
	}
	t.Logf("idle connection closed after %s (idle timeout 300ms)", took.Round(time.Millisecond))
}

// With max_connections 2, a third client waits (in the listen queue)
// until one of the first two closes, then is served.
func TestConnectionCapHolds(t *testing.T) {
	limits := testLimits()
	limits.MaxConnections = 2
	addr := startServer(t, limits, readBody)
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintf(third, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	answered := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(third)
		answered <- string(b)
	}()
	select {
	case got := <-answered:
		t.Fatalf("the third connection was served while two were open: %q", got)
	case <-time.After(500 * time.Millisecond):
	}
	held[0].Close()
	select {
	case got := <-answered:
		if !strings.Contains(got, "200 OK") {
			t.Fatalf("third connection: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the third connection was not served after a slot freed")
	}
}

func TestHTTPServerConfig(t *testing.T) {
	cfg, err := engine.ParseConfig([]byte(`modules: []
http_server:
  max_connections: 50
  read_timeout: 5s
  idle_timeout: 1m
  write_timeout: 30s
  max_header_bytes: 16KiB
  max_response_body: 8MiB
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hs := cfg.HTTPServer
	if hs.MaxConnections != 50 || hs.ReadTimeout != 5*time.Second || hs.IdleTimeout != time.Minute ||
		hs.WriteTimeout != 30*time.Second || hs.MaxHeaderBytes != 16<<10 || hs.MaxResponseBody != 8<<20 ||
		hs.ReadHeaderTimeout != engine.DefaultReadHeaderTimeout {
		t.Errorf("parsed %+v", hs)
	}
	for yaml, want := range map[string]string{
		"http_server: {max_connections: 0}":           "between 1 and 1000000",
		"http_server: {read_timeout: 0}":              "between 1ms and 24h",
		"http_server: {max_response_body: 64 apples}": `"64 apples" is not a size`,
		"http_server: {max_response_body: 2GiB}":      "between 1KiB and 1GiB",
		"http_server: {max_header_bytes: 10}":         "between 1KiB and 1GiB",
		"http_server: {read_timout: 5s}":              `did you mean "read_timeout"`,
	} {
		_, err := engine.ParseConfig([]byte("modules: []\n"+yaml+"\n"), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", yaml, err, want)
		}
	}
}

// `luahost call` with a 100 KB argument that is not JSON echoed it whole.
func TestCallDoesNotEchoHugeArguments(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/luahost.yaml", "server_name: example.org\nstorage: {backend: memory}\nmodules:\n  - module: m.lua\n")
	writeFile(t, dir+"/m.lua", `return { new = function(c, api) api.register_spam_checker_callbacks{
	check_event_for_spam = function(ev) return api.NOT_SPAM end } end }`)
	for _, arg := range []string{strings.Repeat("{", 100000), `{"type": 1, "x": "` + strings.Repeat("y", 100000) + `"}`} {
		var stdout, stderr strings.Builder
		code := run([]string{"call", "-c", dir + "/luahost.yaml", "check_event_for_spam", arg}, &stdout, &stderr)
		if code == 0 {
			t.Errorf("a bad argument was accepted: %s", stdout.String())
		}
		if stderr.Len() > 2000 {
			t.Errorf("the error echoes %d bytes: %.300s", stderr.Len(), stderr.String())
		}
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
