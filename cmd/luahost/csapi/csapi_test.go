package csapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
)

// newServer serves a fresh in-memory homeserver over eng (nil: no
// modules) on a loopback test server, with alice and bob as users.
func newServer(t *testing.T, eng *engine.Engine) (base string, host *memhost.Host, tokens map[string]string) {
	t.Helper()
	host = memhost.New("example.org")
	tokens = map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		tok, err := host.CreateUser(u, false)
		if err != nil {
			t.Fatal(err)
		}
		tokens[u] = tok
	}
	s := New(eng, host, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL, host, tokens
}

// do sends a request and returns the status and the decoded JSON body.
func do(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
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
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %s", method, url, b)
		}
	}
	return resp.StatusCode, out
}

func TestLimiterTake(t *testing.T) {
	// rate 1/s, burst 2: two at once, the third waits a second, one
	// more after each second.
	type step struct {
		at    time.Duration
		ok    bool
		retry time.Duration
	}
	tests := []struct {
		name        string
		rate, burst float64
		steps       []step
	}{
		{"burst then refill", 1, 2, []step{
			{0, true, 0}, {0, true, 0}, {0, false, time.Second},
			{500 * time.Millisecond, false, 500 * time.Millisecond},
			{time.Second, true, 0}, {time.Second, false, time.Second},
		}},
		{"an idle bucket empties", 2, 1, []step{
			{0, true, 0}, {100 * time.Millisecond, false, 400 * time.Millisecond},
			{10 * time.Second, true, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			var now time.Time
			l := newLimiter()
			l.now = func() time.Time { return now }
			for i, st := range tt.steps {
				now = start.Add(st.at)
				ok, retry := l.take("rc_message", "@a:x", tt.rate, tt.burst, true)
				if ok != st.ok || retry != st.retry {
					t.Errorf("step %d at %v: take = %v, %v; want %v, %v", i, st.at, ok, retry, st.ok, st.retry)
				}
			}
		})
	}
}

func TestRouting(t *testing.T) {
	base, host, tok := newServer(t, nil)
	ctx := context.Background()
	roomID, _, err := host.CreateRoom(ctx, "@alice:example.org", map[string]any{"name": "R"})
	if err != nil {
		t.Fatal(err)
	}
	escaped := strings.NewReplacer("!", "%21", ":", "%3A").Replace(roomID)
	tests := []struct {
		name, method, path, body string
		status                   int
		errcode                  string
	}{
		{"escaped room ID", "GET", "/_matrix/client/v3/rooms/" + escaped + "/state/m.room.name/", "", 200, ""},
		{"no trailing slash means an empty state key", "GET", "/_matrix/client/v3/rooms/" + roomID + "/state/m.room.name", "", 200, ""},
		{"r0 alias", "GET", "/_matrix/client/r0/rooms/" + roomID + "/state/m.room.name", "", 200, ""},
		{"unknown state", "GET", "/_matrix/client/v3/rooms/" + roomID + "/state/m.room.topic/", "", 404, "M_NOT_FOUND"},
		{"known path, wrong method", "POST", "/_matrix/client/v3/sync", "{}", 405, "M_UNRECOGNIZED"},
		{"unknown path", "GET", "/_matrix/client/v3/rooms/" + roomID, "", 404, "M_UNRECOGNIZED"},
		{"encoded slash stays in its segment", "GET", "/_matrix/client/v3/rooms/a%2Fb/state", "", 403, "M_FORBIDDEN"},
		{"unknown room", "POST", "/_matrix/client/v3/join/!nope:example.org", "{}", 404, "M_NOT_FOUND"},
		{"bad room ID", "POST", "/_matrix/client/v3/join/nope", "{}", 400, "M_UNKNOWN"},
		{"unknown admin path", "GET", "/_synapse/admin/v1/nothing", "", 404, "M_UNRECOGNIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, tt.method, base+tt.path, tok["alice"], tt.body)
			if status != tt.status || tt.errcode != "" && body["errcode"] != tt.errcode {
				t.Errorf("%s %s = %d %v; want %d %s", tt.method, tt.path, status, body, tt.status, tt.errcode)
			}
		})
	}
}

// A long-poll with nothing to report waits, and returns once something
// arrives for the user.
func TestSyncLongPollWakes(t *testing.T) {
	base, host, tok := newServer(t, nil)
	ctx := context.Background()
	roomID, _, err := host.CreateRoom(ctx, "@alice:example.org", map[string]any{"preset": "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := host.UpdateMembership(ctx, "@bob:example.org", "@bob:example.org", roomID, "join", nil); err != nil {
		t.Fatal(err)
	}
	_, first := do(t, "GET", base+"/_matrix/client/v3/sync?set_presence=offline", tok["bob"], "")
	since := first["next_batch"].(string)

	type answer struct {
		status int
		body   map[string]any
	}
	got := make(chan answer, 1)
	go func() {
		status, body := do(t, "GET", base+"/_matrix/client/v3/sync?set_presence=offline&timeout=20000&since="+since, tok["bob"], "")
		got <- answer{status, body}
	}()
	select {
	case a := <-got:
		t.Fatalf("the long-poll answered before anything happened: %d %v", a.status, a.body)
	case <-time.After(100 * time.Millisecond):
	}
	status, _ := do(t, "PUT", base+"/_matrix/client/v3/rooms/"+roomID+"/send/m.room.message/1", tok["alice"], `{"body":"wake up"}`)
	if status != 200 {
		t.Fatalf("send: %d", status)
	}
	select {
	case a := <-got:
		b, _ := json.Marshal(a.body)
		if a.status != 200 || !strings.Contains(string(b), `"body":"wake up"`) {
			t.Fatalf("long-poll answered %d %s; want the message", a.status, b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long-poll did not wake up for the message")
	}
}

// Closing Options.Done ends a waiting long-poll at once, for a quick
// shutdown.
func TestSyncEndsAtShutdown(t *testing.T) {
	host := memhost.New("example.org")
	tok, err := host.CreateUser("alice", false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	ts := httptest.NewServer(New(nil, host, Options{Done: done, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer ts.Close()
	_, first := do(t, "GET", ts.URL+"/_matrix/client/v3/sync?set_presence=offline", tok, "")
	since := first["next_batch"].(string)
	got := make(chan int, 1)
	go func() {
		status, _ := do(t, "GET", ts.URL+"/_matrix/client/v3/sync?set_presence=offline&timeout=60000&since="+since, tok, "")
		got <- status
	}()
	time.Sleep(50 * time.Millisecond) // let it wait
	close(done)
	select {
	case status := <-got:
		if status != 200 {
			t.Fatalf("the long-poll ended with %d; want 200", status)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long-poll kept waiting after Done was closed")
	}
}

// After a reload, the running server asks the new version of a module.
func TestReloadChangesTheAnswer(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("luahost.yaml", "server_name: example.org\nstorage: { backend: memory }\nmodules:\n  - module: spam.lua\n")
	spam := `
local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      if event.content.body == %q then return api.Codes.FORBIDDEN end
      return api.NOT_SPAM
    end,
  }
end
return M
`
	write("spam.lua", strings.Replace(spam, "%q", `"nope"`, 1))
	host := memhost.New("example.org")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng, err := engine.Start(ctx, filepath.Join(dir, "luahost.yaml"), engine.Options{Host: host, NoWatch: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	tok, err := host.CreateUser("alice", false)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(New(eng, host, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer ts.Close()
	_, room := do(t, "POST", ts.URL+"/_matrix/client/v3/createRoom", tok, `{}`)
	send := func(txn string) (int, map[string]any) {
		return do(t, "PUT", ts.URL+"/_matrix/client/v3/rooms/"+room["room_id"].(string)+"/send/m.room.message/"+txn, tok, `{"body":"hello"}`)
	}
	if status, body := send("1"); status != 200 {
		t.Fatalf("before the reload: %d %v; want 200", status, body)
	}
	write("spam.lua", strings.Replace(spam, "%q", `"hello"`, 1))
	if err := eng.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if status, body := send("2"); status != 403 || body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("after the reload: %d %v; want 403 M_FORBIDDEN", status, body)
	}
}

// Hostile requests get an answer, never a crash or a hang.
func FuzzServe(f *testing.F) {
	host := memhost.New("example.org")
	tok, err := host.CreateUser("alice", false)
	if err != nil {
		f.Fatal(err)
	}
	roomID, _, err := host.CreateRoom(context.Background(), "@alice:example.org", map[string]any{})
	if err != nil {
		f.Fatal(err)
	}
	s := New(nil, host, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	seeds := []struct{ method, path, body string }{
		{"POST", "/_matrix/client/v3/createRoom", `{"invite": [1, {}], "initial_state": [{"type": "m.room.create"}], "power_level_content_override": {"users": 5}}`},
		{"POST", "/_matrix/client/v3/createRoom", strings.Repeat("[", 100000)},
		{"PUT", "/_matrix/client/v3/rooms/" + roomID + "/send/m.room.message/1", `{"body": "` + strings.Repeat("x", 1000) + `"}`},
		{"PUT", "/_matrix/client/v3/rooms/" + roomID + "/state/m.room.member/@alice:example.org", `{"membership": 7}`},
		{"PUT", "/_matrix/client/v3/rooms/" + roomID + "/state/m.room.power_levels/", `{"users": {"@alice:example.org": "lots"}}`},
		{"GET", "/_matrix/client/v3/sync?since=s-1&timeout=-5&filter=%7B", ""},
		{"GET", "/_matrix/client/v3/sync?since=s99999999999999999999", ""},
		{"GET", "/_matrix/client/v3/rooms/" + roomID + "/messages?from=x&dir=q&limit=-1", ""},
		{"POST", "/_matrix/client/v3/register", `{"username": "\u0000", "password": 5, "auth": {"type": "m.login.email.identity", "threepid_creds": 3}}`},
		{"POST", "/_matrix/client/v3/login", `{"type": "m.login.password", "identifier": {"type": "m.id.thirdparty"}, "password": "x"}`},
		{"POST", "/_matrix/media/v3/upload", "\xff\xfe"},
		{"GET", "/_matrix/client/v3/../../etc/passwd", ""},
		{"DELETE", "/_synapse/admin/v1/rooms/" + roomID, `{"block": "yes"}`},
	}
	for _, sd := range seeds {
		f.Add(sd.method, sd.path, sd.body)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://example.org"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code < 200 || w.Code > 599 {
			t.Fatalf("%s %s: status %d", method, path, w.Code)
		}
		if w.Code >= 500 && w.Code != 500 {
			t.Fatalf("%s %s: status %d", method, path, w.Code)
		}
	})
}
