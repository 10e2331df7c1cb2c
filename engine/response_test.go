package engine_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	. "github.com/luahost/luahost/engine"
)

// syncBuffer is a log destination safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A script's Content-Length (or Transfer-Encoding) never frames the
// response: a length larger than the body hung and then truncated the
// reply, a smaller one cut it.
func TestScriptContentLengthIsNotTrusted(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": `return { new = function(c, api)
	api.register_web_resource("/_synapse/client/long", function()
		return { body = "hi", headers = { ["Content-Length"] = "1000", ["X-Kept"] = "yes" } }
	end)
	api.register_web_resource("/_synapse/client/short", function()
		return { body = "hello world", headers = { ["content-length"] = "2", ["Transfer-Encoding"] = "chunked" } }
	end)
	api.register_web_resource("/_synapse/client/empty", function()
		return { status = 204, body = "ignored", headers = { ["Content-Length"] = "7" } }
	end)
end }`})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	for path, want := range map[string]string{"/_synapse/client/long": "hi", "/_synapse/client/short": "hello world", "/_synapse/client/empty": ""} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != want {
			t.Errorf("GET %s: body %q (%v), want %q", path, body, err, want)
		}
		if want != "" && resp.ContentLength != int64(len(want)) {
			t.Errorf("GET %s: Content-Length %d, want %d", path, resp.ContentLength, len(want))
		}
		if path == "/_synapse/client/long" && resp.Header.Get("X-Kept") != "yes" {
			t.Errorf("other headers must stay: %v", resp.Header)
		}
	}
}

// A response body over http_server.max_response_body is answered 500 and
// logged with the module's name.
func TestOversizedResponseIs500(t *testing.T) {
	cfg, err := ParseConfig([]byte(`server_name: example.org
http_server: {max_response_body: 1KiB}
modules:
  - module: big.lua
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	e, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), FS: mapFS(map[string]string{
		"big.lua": `return { new = function(c, api)
	api.register_web_resource("/_synapse/client/big", function(req)
		return { body = ("x"):rep(tonumber(req.query.n)) }
	end)
end }`})})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for n, status := range map[string]int{"1024": 200, "1025": 500, "5000000": 500} {
		rec := httptest.NewRecorder()
		e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/_synapse/client/big?n="+n, nil))
		if rec.Code != status {
			t.Errorf("%s bytes: status %d, want %d", n, rec.Code, status)
		}
		if status == 500 && rec.Body.Len() > 200 {
			t.Errorf("%s bytes: the error response holds %d bytes", n, rec.Body.Len())
		}
	}
	if l := logs.String(); !strings.Contains(l, "module=big") || !strings.Contains(l, "max_response_body") {
		t.Errorf("the log should name the module and the limit:\n%s", l)
	}
}
