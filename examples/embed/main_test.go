package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/luahost/luahost/engine"
)

// startServer runs the example's server (its own luahost.yaml and
// spam.lua) behind httptest.
func startServer(t *testing.T) (*server, *httptest.Server) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, handler, err := newServer(context.Background(), ".", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.eng.Close() })
	ts := httptest.NewServer(handler)
	t.Cleanup(ts.Close)
	return s, ts
}

// do sends a request with an optional access token and decodes the JSON
// answer.
func do(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v", method, url, err)
	}
	return resp.StatusCode, out
}

func TestSend(t *testing.T) {
	s, ts := startServer(t)
	if !s.eng.Has(engine.CallbackCheckEventForSpam) {
		t.Fatal("spam.lua registered no check_event_for_spam")
	}
	tests := []struct {
		name, token, body string
		status            int
		errcode           string
		extra             map[string]any
	}{
		{name: "ham", token: "alice-token", body: `{"room_id":"!r:example.org","body":"hello"}`, status: 200},
		{name: "listed sender", token: "spammer-token", body: `{"room_id":"!r:example.org","body":"hello"}`,
			status: 403, errcode: "M_FORBIDDEN"},
		{name: "banned word", token: "alice-token", body: `{"room_id":"!r:example.org","body":"Buy cheap pills"}`,
			status: 403, errcode: "M_FORBIDDEN", extra: map[string]any{"reason": "banned word", "word": "buy cheap"}},
		{name: "no token", body: `{"room_id":"!r:example.org","body":"hello"}`, status: 401, errcode: "M_UNKNOWN_TOKEN"},
		{name: "not JSON", token: "alice-token", body: `hello`, status: 400, errcode: "M_BAD_JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := do(t, "POST", ts.URL+"/send", tc.token, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, out)
			}
			if tc.errcode == "" {
				if id, _ := out["event_id"].(string); !strings.HasPrefix(id, "$") {
					t.Fatalf("no event_id in %v", out)
				}
				return
			}
			if out["errcode"] != tc.errcode {
				t.Fatalf("errcode %v, want %s: %v", out["errcode"], tc.errcode, out)
			}
			for k, v := range tc.extra {
				if out[k] != v {
					t.Errorf("%s = %v, want %v (answer %v)", k, out[k], v, out)
				}
			}
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) != 1 || s.events[0].Content["body"] != "hello" {
		t.Errorf("stored %d events, want only the ham message", len(s.events))
	}
}

func TestModuleWebResource(t *testing.T) {
	s, ts := startServer(t)
	if got := strings.Join(s.eng.Paths(), " "); got != "/_synapse/client/embed/stats /_synapse/client/embed/whoami" {
		t.Fatalf("Paths() = %v", got)
	}
	url := ts.URL + "/_synapse/client/embed/whoami"

	// The handler uses the host's TokenAuthenticator and ProfileGetter.
	status, out := do(t, "GET", url, "alice-token", "")
	if status != 200 || out["user_id"] != "@alice:example.org" || out["displayname"] != "Alice" || out["evil"] != false {
		t.Fatalf("GET whoami as alice: %d %v", status, out)
	}
	status, out = do(t, "GET", url, "spammer-token", "")
	if status != 200 || out["evil"] != true {
		t.Fatalf("GET whoami as spammer: %d %v", status, out)
	}
	// get_user_by_req's 401s come from the engine.
	if status, out = do(t, "GET", url, "", ""); status != 401 || out["errcode"] != "M_MISSING_TOKEN" {
		t.Fatalf("GET whoami without a token: %d %v", status, out)
	}
	if status, out = do(t, "GET", url, "wrong", ""); status != 401 || out["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("GET whoami with an unknown token: %d %v", status, out)
	}
	// A method table: other methods get 405 from the engine.
	if status, out = do(t, "POST", url, "alice-token", "{}"); status != 405 {
		t.Fatalf("POST whoami: %d %v", status, out)
	}
	// The homeserver's own routes still answer 404 for anything else.
	resp, err := http.Get(ts.URL + "/_synapse/client/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET an unmounted path: %d", resp.StatusCode)
	}
}

// TestNotification: accepted messages reach the module's on_new_event
// through the engine's queue, after the client got its answer.
func TestNotification(t *testing.T) {
	_, ts := startServer(t)
	for _, tok := range []string{"alice-token", "spammer-token", "alice-token"} {
		do(t, "POST", ts.URL+"/send", tok, `{"room_id":"!r:example.org","body":"hello"}`)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, out := do(t, "GET", ts.URL+"/_synapse/client/embed/stats", "", "")
		if out["accepted"] == 2.0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats: %v, want 2 accepted messages", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
