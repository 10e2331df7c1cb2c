package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	. "github.com/luahost/luahost/engine"

	"github.com/luahost/luahost/cmd/luahost/memhost"
)

var hostfuncsLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// newTestEngine builds an engine over host from a config and module files
// held in memory, failing the test if any module does not load.
// nameHost is a homeserver with a name and no capabilities.
type nameHost string

func (h nameHost) ServerName() string { return string(h) }

func newTestEngine(t *testing.T, host Host, files map[string]string, yaml string) *Engine {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	e, err := New(context.Background(), cfg, Options{Host: host, FS: fsys, Logger: hostfuncsLog})
	if e != nil {
		t.Cleanup(func() { e.Close() })
	}
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return e
}

// caseModule wraps a Lua snippet as the body of a spam check, so a test
// runs it with CheckEventForSpam. The snippet sees event, config, api and
// eq(got, want, what); it starts at line caseFirstLine of t.lua.
const caseModule = `local M = {}
local function eq(got, want, what)
  if got ~= want then error(string.format("%%s: got %%s, want %%s", what, tostring(got), tostring(want)), 2) end
end
function M.new(config, api)
  api.register_spam_checker_callbacks{ check_event_for_spam = function(event)
%s
    return api.NOT_SPAM
  end }
end
return M
`

const caseFirstLine = 7

// runLua runs snippet once in a fresh engine over host; yamlExtra is
// added to the module's entry (e.g. "timeout: 200ms").
func runLua(t *testing.T, host Host, snippet, top, moduleExtra string) error {
	t.Helper()
	e := newTestEngine(t, host, map[string]string{"t.lua": fmt.Sprintf(caseModule, snippet)},
		"server_name: example.org\n"+top+"modules:\n  - module: t.lua\n"+moduleExtra)
	_, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "x"))
	return err
}

// seededHost is a memhost with alice (admin), bob and a room with the
// alias #lobby:example.org.
func seededHost(t *testing.T) (*memhost.Host, string) {
	t.Helper()
	ctx := context.Background()
	h := memhost.New("example.org")
	if _, err := h.RegisterUser(ctx, NewUser{Localpart: "alice", DisplayName: "Alice", Admin: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.RegisterUser(ctx, NewUser{Localpart: "bob"}); err != nil {
		t.Fatal(err)
	}
	roomID, _, err := h.CreateRoom(ctx, "@alice:example.org", map[string]any{"room_alias_name": "lobby", "name": "Lobby", "preset": "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	return h, roomID
}

func TestHostFunctionsAgainstMemhost(t *testing.T) {
	tests := []struct {
		name    string
		lua     string
		wantErr string
		check   func(t *testing.T, h *memhost.Host, roomID string)
	}{
		{name: "check_user_exists", lua: `
    eq(api.check_user_exists("@ALICE:example.org"), "@alice:example.org", "case-folded")
    eq(api.check_user_exists("@nobody:example.org"), nil, "missing")
    eq(select("#", api.check_user_exists("@nobody:example.org")), 1, "one return")`},
		{name: "get_userinfo_by_id", lua: `
    local u = api.get_userinfo_by_id("@alice:example.org")
    eq(u.user_id, "@alice:example.org", "user_id")
    eq(u.is_admin, true, "is_admin")
    eq(u.is_guest, false, "is_guest")
    eq(u.is_deactivated, false, "is_deactivated")
    eq(u.is_shadow_banned, false, "is_shadow_banned")
    eq(u.locked, false, "locked")
    eq(type(u.creation_ts), "number", "creation_ts")
    eq(api.get_userinfo_by_id("@nobody:example.org"), nil, "missing")`},
		{name: "is_user_admin", lua: `
    eq(api.is_user_admin("@alice:example.org"), true, "alice")
    eq(api.is_user_admin("@bob:example.org"), false, "bob")
    eq(api.is_user_admin("@nobody:example.org"), false, "missing")`},
		{name: "get_profile_for_user", lua: `
    local p = api.get_profile_for_user("alice")
    eq(p.display_name, "Alice", "localpart is qualified")
    eq(p.avatar_url, nil, "avatar_url")
    eq(api.get_profile_for_user("@bob:example.org").display_name, "bob", "full ID")
    eq(api.get_profile_for_user("nobody"), nil, "missing")`},
		{name: "set_displayname", lua: `
    eq(api.set_displayname("@bob:example.org", "Robert"), nil, "returns nothing")
    eq(api.get_profile_for_user("bob").display_name, "Robert", "new name")`},
		{name: "register_user", lua: `
    eq(api.register_user("carol", "Carol", {"carol@example.org"}, true), "@carol:example.org", "user_id")
    eq(api.is_user_admin("@carol:example.org"), true, "admin")
    eq(api.get_profile_for_user("carol").display_name, "Carol", "display name")
    eq(api.register_user("dave"), "@dave:example.org", "only a localpart")
    eq(api.is_user_admin("@dave:example.org"), false, "not admin")`},
		{name: "register_device", lua: `
    local dev, tok = api.register_device("@alice:example.org", "PHONE", "Alice's phone")
    eq(dev, "PHONE", "device_id")
    eq(tok:sub(1, 4), "syt_", "access token")
    local dev2, tok2 = api.register_device("@alice:example.org")
    eq(#dev2, 10, "generated device ID")
    assert(tok2 ~= tok, "a fresh token")`},
		{name: "get_room_state", lua: `
    local s = api.get_room_state(config.room_id)
    eq(s["m.room.create"][""].sender, "@alice:example.org", "create sender")
    eq(s["m.room.member"]["@alice:example.org"].content.membership, "join", "membership")
    eq(s["m.room.name"][""].content.name, "Lobby", "name")
    local f = api.get_room_state(config.room_id, {{"m.room.member", nil}, {"m.room.name", ""}})
    eq(f["m.room.create"], nil, "filtered out")
    eq(f["m.room.member"]["@alice:example.org"].state_key, "@alice:example.org", "any state key")
    eq(f["m.room.name"][""].type, "m.room.name", "exact state key")
    eq(api.get_room_state("!nope:example.org"), nil, "unknown room")`},
		{name: "create_and_send_event_into_room", lua: `
    local ev = api.create_and_send_event_into_room{type = "m.room.message", room_id = config.room_id,
      sender = "@alice:example.org", content = {msgtype = "m.text", body = "hello"}}
    eq(type(ev.event_id), "string", "event_id")
    eq(ev.content.body, "hello", "content")
    eq(ev.state_key, nil, "not state")
    local topic = api.create_and_send_event_into_room{type = "m.room.topic", room_id = config.room_id,
      sender = "@alice:example.org", state_key = "", content = {topic = "Rules"}}
    eq(topic.state_key, "", "state_key")
    eq(api.get_room_state(config.room_id)["m.room.topic"][""].content.topic, "Rules", "in state")`,
			check: func(t *testing.T, h *memhost.Host, roomID string) {
				evs := h.Events(roomID)
				var found bool
				for _, ev := range evs {
					found = found || ev.Type == "m.room.message" && ev.Content["body"] == "hello"
				}
				if !found {
					t.Error("the message is not in the room's timeline")
				}
			}},
		{name: "update_room_membership", lua: `
    local inv = api.update_room_membership("@alice:example.org", "@bob:example.org", config.room_id, "invite")
    eq(inv.membership, "invite", "invite")
    eq(inv.state_key, "@bob:example.org", "target")
    local j = api.update_room_membership("@bob:example.org", "@bob:example.org", config.room_id, "join", {displayname = "B"})
    eq(j.content.membership, "join", "join")
    eq(j.content.displayname, "B", "content")`},
		{name: "create_room", lua: `
    local id, alias = api.create_room("@alice:example.org", {room_alias_name = "new", name = "New"})
    eq(id:sub(1, 1), "!", "room_id")
    eq(alias, "#new:example.org", "alias")
    local id2, alias2 = api.create_room("@alice:example.org", {}, false)
    eq(type(id2), "string", "room_id without alias")
    eq(alias2, nil, "no alias")
    eq(select("#", api.create_room("@bob:example.org", {})), 2, "two returns")`},
		{name: "lookup_room_alias", lua: `
    local id, servers = api.lookup_room_alias("#lobby:example.org")
    eq(id, config.room_id, "room_id")
    eq(servers[1], "example.org", "servers")
    eq(api.lookup_room_alias("#nope:example.org"), nil, "unknown alias")`},
		{name: "account_data_manager", lua: `
    local adm = api.account_data_manager
    eq(adm.get_global("@alice:example.org", "org.example.x"), nil, "none yet")
    adm.put_global("@alice:example.org", "org.example.x", {a = 1, nested = {b = "c"}})
    eq(adm.get_global("@alice:example.org", "org.example.x").nested.b, "c", "dot call")
    eq(adm:get_global("@alice:example.org", "org.example.x").a, 1, "colon call")
    adm:put_global("@alice:example.org", "org.example.y", {})`,
			check: func(t *testing.T, h *memhost.Host, _ string) {
				c, err := h.GlobalAccountData(context.Background(), "@alice:example.org", "org.example.y")
				if err != nil || c == nil {
					t.Errorf("org.example.y = %v, %v; want an empty object", c, err)
				}
			}},
		{name: "set_presence_for_users", lua: `
    api.set_presence_for_users{["@alice:example.org"] = {state = "online", status_msg = "hi"},
      ["@bob:example.org"] = {"unavailable"}}`,
			check: func(t *testing.T, h *memhost.Host, _ string) {
				if p, ok := h.Presence("@alice:example.org"); !ok || p.State != "online" || p.StatusMsg != "hi" {
					t.Errorf("alice's presence = %+v, %v", p, ok)
				}
				if p, _ := h.Presence("@bob:example.org"); p.State != "unavailable" {
					t.Errorf("bob's presence = %+v (Synapse's tuple form)", p)
				}
			}},
		{name: "send_local_online_presence_to", lua: `
    api.send_local_online_presence_to{"@bob:example.org", "@carol:remote.org"}`,
			check: func(t *testing.T, h *memhost.Host, _ string) {
				got := h.PresenceSentTo()
				if len(got) != 1 || strings.Join(got[0], ",") != "@bob:example.org,@carol:remote.org" {
					t.Errorf("sent to %v", got)
				}
			}},
		{name: "colon call style", lua: `
    eq(api:check_user_exists("@alice:example.org"), "@alice:example.org", "api:")`},
		{name: "host error raises at the line", lua: `
    api.set_displayname("@nobody:example.org", "x")`,
			wantErr: fmt.Sprintf("(t.lua:%d): check_event_for_spam: set_displayname: set display name: user @nobody:example.org: not found", caseFirstLine+1)},
		{name: "argument error raises at the line", lua: `
    api.check_user_exists(42)`,
			wantErr: fmt.Sprintf("(t.lua:%d): check_event_for_spam: check_user_exists: bad argument #1 (user_id): string expected, got number", caseFirstLine+1)},
		{name: "bad state filter", lua: `
    api.get_room_state(config.room_id, {"m.room.member"})`,
			wantErr: "get_room_state: bad argument #2 (types): element 1 must be an {event_type, state_key} pair, got string"},
		{name: "event_dict needs room_id", lua: `
    api.create_and_send_event_into_room{type = "m.room.message", sender = "@alice:example.org"}`,
			wantErr: "create_and_send_event_into_room: bad argument #1 (event_dict): room_id is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, roomID := seededHost(t)
			err := runLua(t, h, tc.lua, "", "    config:\n      room_id: \""+roomID+"\"\n")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, h, roomID)
			}
		})
	}
}

func TestHostFunctionsInTheConstructor(t *testing.T) {
	h, _ := seededHost(t)
	e := newTestEngine(t, h, map[string]string{"t.lua": `
local M = {}
function M.new(config, api)
  local p = api.get_profile_for_user("alice")
  local name = p.display_name
  api.register_spam_checker_callbacks{ check_event_for_spam = function(event)
    if event.content.body == name then return api.Codes.FORBIDDEN end
    return api.NOT_SPAM
  end }
end
return M
`}, "server_name: example.org\nmodules:\n  - module: t.lua\n")
	d, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "Alice"))
	if err != nil || d.Errcode != "M_FORBIDDEN" {
		t.Fatalf("got %+v, %v; want M_FORBIDDEN (the name read in new())", d, err)
	}
}

func TestExampleModuleFromTheBrief(t *testing.T) {
	h, _ := seededHost(t)
	if _, err := h.RegisterUser(context.Background(), NewUser{Localpart: "s", DisplayName: "spammer"}); err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, h, map[string]string{"spam.lua": `
local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{ check_event_for_spam = function(event)
      local p = api.get_profile_for_user(event.sender)
      if p and p.display_name == "spammer" then return api.Codes.FORBIDDEN end
      return api.NOT_SPAM
  end }
end
return M
`}, "server_name: example.org\nmodules:\n  - module: spam.lua\n")
	for sender, want := range map[string]string{"@s:example.org": "M_FORBIDDEN", "@alice:example.org": "", "@ghost:example.org": ""} {
		d, err := e.CheckEventForSpam(context.Background(), hfEvent(sender, "x"))
		if err != nil || d.Errcode != want {
			t.Errorf("%s: got %+v, %v; want %q", sender, d, err, want)
		}
	}
}

func TestUnsupportedCapabilitiesRaise(t *testing.T) {
	calls := []string{
		"check_user_exists", "get_userinfo_by_id", "is_user_admin", "get_profile_for_user",
		"set_displayname", "register_user", "register_device",
		"get_room_state", "create_and_send_event_into_room", "update_room_membership",
		"create_room", "lookup_room_alias",
		"account_data_manager.get_global", "account_data_manager.put_global",
		"set_presence_for_users", "send_local_online_presence_to",
	}
	for _, name := range calls {
		t.Run(name, func(t *testing.T) {
			err := runLua(t, nameHost("example.org"), "    api."+name+"()", "", "")
			want := fmt.Sprintf("(t.lua:%d): check_event_for_spam: %s: not supported by this homeserver", caseFirstLine, name)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, want)
			}
		})
	}
}

func TestHostCallsInsidePcall(t *testing.T) {
	h, _ := seededHost(t)
	err := runLua(t, h, `
    local ok, p = pcall(api.get_profile_for_user, "alice")
    eq(ok, true, "pcall of a host function")
    eq(p.display_name, "Alice", "its result")
    local ok2, n = pcall(function() local p = api.get_profile_for_user("bob"); return p.display_name end)
    eq(ok2, true, "pcall of a closure")
    eq(n, "bob", "closure result")
    local ok3, err = pcall(function()
      api.set_displayname("@nobody:example.org", "x")
    end)
    eq(ok3, false, "the error is caught")
    local want = "t.lua:15: set_displayname: "
    eq(err:sub(1, #want), want, "file:line and name")
    assert(err:find("not found", 1, true), err)
    local ok4, err4 = xpcall(function() api.check_user_exists() end, function(e) return "handled: " .. e end)
    eq(ok4, false, "xpcall")
    assert(err4:find("^handled: t%.lua:21: check_user_exists: bad argument #1"), err4)`, "", "")
	if err != nil {
		t.Fatal(err)
	}
}

// panicHost is a memhost whose Profile panics.
type panicHost struct{ *memhost.Host }

func (panicHost) Profile(ctx context.Context, userID string) (*Profile, error) {
	panic("boom in the host")
}

func TestHostPanicBecomesALuaError(t *testing.T) {
	h, _ := seededHost(t)
	e := newTestEngine(t, panicHost{h}, map[string]string{"t.lua": fmt.Sprintf(caseModule, `
    if event.content.body == "catch" then
      local ok, err = pcall(function() local p = api.get_profile_for_user("alice") return p end)
      eq(ok, false, "pcall")
      assert(err:find("get_profile_for_user: internal error: boom in the host", 1, true), err)
    elseif event.content.body == "raise" then
      api.get_profile_for_user("alice")
    else
      eq(api.check_user_exists("@alice:example.org"), "@alice:example.org", "still serving")
    end`)}, "server_name: example.org\nmodules:\n  - module: t.lua\n")
	ctx := context.Background()
	if _, err := e.CheckEventForSpam(ctx, hfEvent("@a:example.org", "catch")); err != nil {
		t.Fatal(err)
	}
	_, err := e.CheckEventForSpam(ctx, hfEvent("@a:example.org", "raise"))
	if err == nil || !strings.Contains(err.Error(), "boom in the host") {
		t.Fatalf("err = %v; want the panic as a script error", err)
	}
	if _, err := e.CheckEventForSpam(ctx, hfEvent("@a:example.org", "ok")); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
}

// barrierHost is a memhost whose Profile waits until n calls are in it at
// once: calls serialized on the module would never get there.
type barrierHost struct {
	*memhost.Host
	n       int32
	arrived atomic.Int32
	all     chan struct{}
}

func (b *barrierHost) Profile(ctx context.Context, userID string) (*Profile, error) {
	if b.arrived.Add(1) == b.n {
		close(b.all)
	}
	select {
	case <-b.all:
		return b.Host.Profile(ctx, userID)
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("only %d of %d calls arrived: host calls are serialized", b.arrived.Load(), b.n)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestHostCallsOfOneModuleRunConcurrently(t *testing.T) {
	const n = 8
	h, _ := seededHost(t)
	bh := &barrierHost{Host: h, n: n, all: make(chan struct{})}
	e := newTestEngine(t, bh, map[string]string{"t.lua": fmt.Sprintf(caseModule, `
    eq(api.get_profile_for_user("alice").display_name, "Alice", "profile")`)},
		"server_name: example.org\nmodules:\n  - module: t.lua\n    timeout: 20s\n")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "x"))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// stuckHost is a memhost whose Profile, for "@stuck:example.org", blocks
// until released, ignoring its context (the worst case for the engine).
type stuckHost struct {
	*memhost.Host
	release chan struct{}
	entered chan struct{}
}

func (s *stuckHost) Profile(ctx context.Context, userID string) (*Profile, error) {
	if userID == "@stuck:example.org" {
		close(s.entered)
		<-s.release
		return nil, ErrNotFound
	}
	return s.Host.Profile(ctx, userID)
}

func TestDeadlinePassesDuringAHostCall(t *testing.T) {
	h, _ := seededHost(t)
	sh := &stuckHost{Host: h, release: make(chan struct{}), entered: make(chan struct{})}
	e := newTestEngine(t, sh, map[string]string{"t.lua": fmt.Sprintf(caseModule, `
    local p = api.get_profile_for_user(event.content.body)
    eq(p.display_name, "Alice", "profile")`)},
		"server_name: example.org\nmodules:\n  - module: t.lua\n    timeout: 200ms\n")
	// Registered after the engine's cleanup, so it runs first: Close waits
	// for host calls in flight.
	t.Cleanup(func() { close(sh.release) })

	ctx := context.Background()
	_, err := e.CheckEventForSpam(ctx, hfEvent("@a:example.org", "@stuck:example.org"))
	var se *ScriptError
	if !errors.As(err, &se) || !se.Timeout {
		t.Fatalf("err = %v; want a timeout ScriptError", err)
	}
	if !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Errorf("err = %v; want it to say the timeout", err)
	}
	<-sh.entered
	if _, err := e.CheckEventForSpam(ctx, hfEvent("@a:example.org", "@alice:example.org")); err != nil {
		t.Fatalf("the next call: %v", err)
	}
}

func TestHTTPClient(t *testing.T) {
	var srvUA atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		srvUA.Store(r.Header.Get("User-Agent"))
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Reply", "yes")
		json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "query": r.URL.Query(), "body": string(body),
			"content_type": r.Header.Get("Content-Type"), "x_test": r.Header.Get("X-Test"),
		})
	})
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errcode":"M_NOT_FOUND"}`)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 1<<20)
		for range 11 {
			io.WriteString(w, chunk)
		}
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/to-json", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/json?via=redirect", http.StatusFound)
	})
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "not json")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	allow := "http_client:\n  ip_range_allowlist: [\"127.0.0.0/8\"]\n"
	cfg := "    config:\n      url: \"" + srv.URL + "\"\n"

	tests := []struct {
		name, top, lua, wantErr string
	}{
		{name: "loopback refused by default", lua: `
    api.http_client.get_json(config.url .. "/json")`,
			wantErr: "connection refused: 127.0.0.1 is in 127.0.0.0/8 (Loopback) (allow it with http_client.ip_range_allowlist)"},
		{name: "get_json", top: allow, lua: `
    local r = api.http_client.get_json(config.url .. "/json", {a = "1", b = {"x", "y"}, n = 2})
    eq(r.method, "GET", "method")
    eq(r.query.a[1], "1", "string arg")
    eq(r.query.b[2], "y", "array arg")
    eq(r.query.n[1], "2", "number arg")`},
		{name: "post_json_get_json", top: allow, lua: `
    local r = api.http_client.post_json_get_json(config.url .. "/json", {x = 1}, {["X-Test"] = "v"})
    eq(r.method, "POST", "method")
    eq(r.body, '{"x":1}', "JSON body")
    eq(r.content_type, "application/json", "content type")
    eq(r.x_test, "v", "header")`},
		{name: "put_json", top: allow, lua: `
    local r = api.http_client:put_json(config.url .. "/json", {"a"}, {q = "1"}, {["X-Test"] = {"w"}})
    eq(r.method, "PUT", "method")
    eq(r.body, '["a"]', "JSON body")
    eq(r.query.q[1], "1", "args")
    eq(r.x_test, "w", "header")`},
		{name: "request", top: allow, lua: `
    local r = api.http_client.request("post", config.url .. "/json", {headers = {["X-Test"] = "t"}, body = "raw"})
    eq(r.code, 200, "code")
    eq(r.headers["x-reply"], "yes", "lower-case headers")
    local j = require("json").decode(r.body)
    eq(j.body, "raw", "body sent")
    eq(j.x_test, "t", "header sent")
    local m = api.http_client.request("GET", config.url .. "/missing")
    eq(m.code, 404, "no raise on non-2xx")
    eq(m.body, '{"errcode":"M_NOT_FOUND"}', "body")`},
		{name: "non-2xx raises an HttpResponseException", top: allow, lua: `
    local ok, err = pcall(function() local r = api.http_client.get_json(config.url .. "/missing") return r end)
    eq(ok, false, "raises")
    eq(err.code, 404, "err.code")
    eq(err.msg, "Not Found", "err.msg")
    eq(err.body, '{"errcode":"M_NOT_FOUND"}', "err.body")
    eq(tostring(err), "t.lua:8: http_client.get_json: 404 Not Found", "tostring")
    eq(err.message, tostring(err), "err.message")`},
		{name: "non-2xx uncaught", top: allow, lua: `
    api.http_client.post_json_get_json(config.url .. "/missing", {})`,
			wantErr: `module "t" (t.lua:8): check_event_for_spam: http_client.post_json_get_json: 404 Not Found`},
		{name: "oversize body", top: allow, lua: `
    api.http_client.request("GET", config.url .. "/big")`,
			wantErr: "http_client.request: response body is larger than 10 MiB"},
		{name: "non-JSON answer", top: allow, lua: `
    api.http_client.get_json(config.url .. "/text")`,
			wantErr: "is not JSON"},
		{name: "redirects are followed", top: allow, lua: `
    eq(api.http_client.get_json(config.url .. "/to-json").query.via[1], "redirect", "followed")`},
		{name: "redirect loop", top: allow, lua: `
    api.http_client.get_json(config.url .. "/loop")`,
			wantErr: "stopped after 5 redirects"},
		{name: "file scheme refused", top: allow, lua: `
    api.http_client.get_json("file:///etc/passwd")`,
			wantErr: "(t.lua:8): check_event_for_spam: http_client.get_json: refusing \"file:///etc/passwd\": only http and https URLs are allowed"},
		{name: "bad body", top: allow, lua: `
    api.http_client.post_json_get_json(config.url .. "/json", {f = print})`,
			wantErr: "http_client.post_json_get_json: bad argument #2 (body): cannot encode as JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runLua(t, nameHost("example.org"), tc.lua, tc.top, cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.wantErr)
			}
		})
	}
	if ua, _ := srvUA.Load().(string); ua != "luahost" {
		t.Errorf("User-Agent = %q, want luahost", ua)
	}
}

func hfEvent(sender, body string) *Event {
	return &Event{Type: "m.room.message", RoomID: "!r:example.org", Sender: sender, EventID: "$e",
		Content: map[string]any{"msgtype": "m.text", "body": body}}
}
