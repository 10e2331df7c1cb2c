package embedding

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/luahost/luahost/engine"
)

// serverOnly is a Host with no capability.
type serverOnly string

func (s serverOnly) ServerName() string { return string(s) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// homeserverFile writes a homeserver config whose luahost: section lists
// one module, and the module; it returns the config file.
func homeserverFile(t *testing.T, section, module string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mod.lua"), []byte(module), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "homeserver.yaml")
	text := "server_name: example.org\ndatabase: sqlite\nluahost:\n" + section
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

const spamModule = `
local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      if tostring(event.content.body):find("spam", 1, true) then
        return api.Codes.FORBIDDEN, { word = "spam" }
      end
      return api.NOT_SPAM
    end,
  }
end
return M
`

// The homeserver's own config carries the luahost section, without a
// server_name (the Host's is used), and the spam check answers the client
// in one line.
func TestHomeserverConfigAndCheckSend(t *testing.T) {
	file := homeserverFile(t, "  modules:\n    - module: mod.lua\n", spamModule)
	eng, err := fromHomeserverConfig(context.Background(), file, serverOnly("example.org"))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if got := eng.Config().ServerName; got != "example.org" {
		t.Errorf("server name %q, want the host's", got)
	}
	s := &server{eng: eng}
	tests := []struct {
		name, event string
		ok          bool
		status      int
		body        map[string]any
	}{
		{"clean", `{"type":"m.room.message","sender":"@a:example.org","room_id":"!r:example.org","content":{"body":"hi"}}`, true, 200, nil},
		{"spam", `{"type":"m.room.message","sender":"@a:example.org","room_id":"!r:example.org","content":{"body":"spam!"}}`, false, 403,
			map[string]any{"errcode": "M_FORBIDDEN", "error": "This message has been rejected as probable spam", "word": "spam"}},
		{"not an event", `[1]`, false, 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			ok := s.checkSend(w, httptest.NewRequest("PUT", "/send", nil), []byte(tc.event))
			if ok != tc.ok || (!ok && w.Code != tc.status) {
				t.Fatalf("checkSend = %v, status %d (%s); want %v, %d", ok, w.Code, w.Body, tc.ok, tc.status)
			}
			if tc.body != nil {
				var got map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				for k, v := range tc.body {
					if got[k] != v {
						t.Errorf("%s = %v, want %v (body %s)", k, got[k], v, w.Body)
					}
				}
			}
		})
	}
}

// Errors in a luahost section point into the homeserver's file; a
// server_name that disagrees with the host's is refused.
func TestHomeserverConfigErrors(t *testing.T) {
	tests := []struct{ name, section, want string }{
		{"unknown key on line 5", "  modules:\n    - module: mod.lua\n      timeot: 5s\n", "homeserver.yaml:6:"},
		{"other server", "  server_name: other.org\n  modules:\n    - module: mod.lua\n", `server_name "other.org" does not match the homeserver's "example.org"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := homeserverFile(t, tc.section, spamModule)
			eng, err := fromHomeserverConfig(context.Background(), file, serverOnly("example.org"))
			if eng != nil {
				eng.Close()
				t.Fatal("got an engine and an error")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// A nil engine is "no modules": every check allows, nothing is loaded.
func TestNilEngine(t *testing.T) {
	s := &server{loadState: func(context.Context, string) (engine.StateMap, error) {
		t.Fatal("room state loaded although no module asks for it")
		return nil, nil
	}}
	w := httptest.NewRecorder()
	if !s.checkSend(w, httptest.NewRequest("PUT", "/send", nil), []byte(`{"type":"m.room.message","sender":"@a:b","content":{"body":"spam"}}`)) {
		t.Errorf("nil engine refused: %d %s", w.Code, w.Body)
	}
	ev := &engine.Event{Type: "m.room.message", RoomID: "!r:b", Sender: "@a:b"}
	if got, refusal, err := s.eventAllowed(context.Background(), ev); got != ev || refusal != nil || err != nil {
		t.Errorf("eventAllowed = %v, %v, %v", got, refusal, err)
	}
	s.eventSent(ev, nil)
	rec := httptest.NewRecorder()
	s.eng.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/_synapse/client/x", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil engine's handler: %d", rec.Code)
	}
}

const capabilitiesModule = `
local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{
    user_may_create_room = function(user_id, room_config)
      local ok, res = pcall(api.create_room, user_id, room_config)
      return api.Codes.FORBIDDEN, { result = tostring(res) }
    end,
  }
end
return M
`

// A capability method's ErrNotSupported reaches the script as the one
// standard message; a capability the host has works.
func TestCapabilities(t *testing.T) {
	file := homeserverFile(t, "  modules:\n    - module: mod.lua\n", capabilitiesModule)
	host := &myHost{name: "example.org", createRoom: func(ctx context.Context, userID string, config map[string]any) (string, error) {
		return "!new:example.org", nil
	}}
	eng, err := fromHomeserverConfig(context.Background(), file, host)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	tests := []struct {
		config map[string]any
		want   string
	}{
		{map[string]any{"name": "x"}, "!new:example.org"},
		{map[string]any{"room_alias_name": "x"}, "create_room: not supported by this homeserver"},
	}
	for _, tc := range tests {
		d, err := eng.UserMayCreateRoom(context.Background(), "@a:example.org", tc.config)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := d.Extra["result"].(string)
		if !strings.HasSuffix(got, tc.want) || strings.Count(got, "create_room:") > 1 {
			t.Errorf("create_room(%v) gave %q, want it to end in %q (once)", tc.config, got, tc.want)
		}
	}
}

const geoModule = `local M = {}
function M.new(config, api)
  local geo = require("geo")
  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      if geo.Country(event.content.ip) == "XX" then return api.Codes.FORBIDDEN end
      local strict = geo:Lookup(event.content.ip) -- line 7: panics for an unknown address
      return api.NOT_SPAM
    end,
  }
end
return M
`

// A Go value in Options.Libraries is a library scripts require; a panic in
// it is a Lua error at the script's line.
func TestLibraries(t *testing.T) {
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "luahost.yaml")
	for name, text := range map[string]string{"mod.lua": geoModule, "luahost.yaml": "modules:\n  - module: mod.lua\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	geo := &Geo{countries: map[string]string{"192.0.2.1": "XX", "192.0.2.2": "NL"}}
	opts := withLibraries(serverOnly("example.org"), geo)
	opts.Logger, opts.NoWatch = quiet(), true
	eng, err := engine.Start(context.Background(), yamlFile, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	event := func(ip string) *engine.Event {
		return &engine.Event{Type: "m.room.message", Sender: "@a:example.org", Content: map[string]any{"ip": ip}}
	}
	if d, err := eng.CheckEventForSpam(context.Background(), event("192.0.2.1")); err != nil || d.Allowed() {
		t.Errorf("XX address: %+v, %v; want a refusal", d, err)
	}
	if d, err := eng.CheckEventForSpam(context.Background(), event("192.0.2.2")); err != nil || !d.Allowed() {
		t.Errorf("NL address: %+v, %v; want allowed", d, err)
	}
	_, err = eng.CheckEventForSpam(context.Background(), event("198.51.100.9"))
	var se *engine.ScriptError
	if !errors.As(err, &se) || se.Line != 7 || !strings.Contains(se.Msg, "no country for 198.51.100.9") {
		t.Errorf("panic in the library: %v; want a script error at line 7 naming the panic", err)
	}
}

// The other snippets compile; these are not run (they need a database, a
// signal or a listener), but must stay referenced.
var _ = []any{quickStart, reloadOnHUP, fromJSONConfig, withStore, newServer, (*myHost).Profile}
