package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/luahost/luahost/engine"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/internal/invoke"
	"github.com/luahost/luahost/luaapi"
)

// The ModuleApi members ports of real Synapse modules asked for:
// threepids, state events as a list, the public room list, worker_name,
// the identifier helpers, get_user_by_req's expiry and guest checks, the
// legacy account-validity callbacks, and callbacks that are not Synapse's.

func TestModAPIHostFunctionsAgainstMemhost(t *testing.T) {
	tests := []struct {
		name, lua, top string
		setup          func(t *testing.T, h *memhost.Host, roomID string)
		wantErr        string
	}{
		{name: "get_threepids_for_user", setup: func(t *testing.T, h *memhost.Host, _ string) {
			if _, err := h.RegisterUser(context.Background(), NewUser{Localpart: "carol", Emails: []string{"Carol@Example.org"}}); err != nil {
				t.Fatal(err)
			}
			if err := h.AddThreepid("@carol:example.org", "msisdn", "447700900000"); err != nil {
				t.Fatal(err)
			}
		}, lua: `
    local tps = api.get_threepids_for_user("@carol:example.org")
    eq(#tps, 2, "count")
    eq(tps[1].medium, "email", "medium")
    eq(tps[1].address, "carol@example.org", "address, lower-cased")
    eq(type(tps[1].validated_at), "number", "validated_at")
    eq(tps[1].added_at > 1600000000000, true, "added_at in ms")
    eq(tps[2].medium .. " " .. tps[2].address, "msisdn 447700900000", "msisdn")
    eq(#api.get_threepids_for_user("@nobody:example.org"), 0, "unknown user: none")
    eq(require("json").encode(api.get_threepids_for_user("@bob:example.org")), "[]", "an array")`},
		{name: "get_state_events_in_room", lua: `
    local evs = api.get_state_events_in_room(event.content.room)
    eq(#evs > 5, true, "whole state")
    local last = ""
    for i, ev in ipairs(evs) do
      local k = ev.type .. "|" .. ev.state_key
      eq(k > last, true, "sorted: " .. k)
      last = k
    end
    local members = api.get_state_events_in_room(event.content.room, { {"m.room.member", nil}, {"m.room.name", ""} })
    eq(#members, 2, "filtered")
    eq(members[1].type .. " " .. members[1].state_key, "m.room.member @alice:example.org", "member")
    eq(members[2].content.name, "Lobby", "name")
    eq(#api.get_state_events_in_room("!nope:example.org"), 0, "unknown room")`},
		{name: "public room list", setup: func(t *testing.T, h *memhost.Host, _ string) {
			if _, _, err := h.CreateRoom(context.Background(), "@alice:example.org", map[string]any{"room_alias_name": "dir", "visibility": "public"}); err != nil {
				t.Fatal(err)
			}
		}, lua: `
    local pub = api.lookup_room_alias("#dir:example.org")
    local lobby = event.content.room
    eq(api.room_is_in_public_room_list(pub), true, "visibility public")
    eq(api.public_room_list_manager.room_is_in_public_room_list(lobby), false, "not published")
    api.public_room_list_manager.add_room_to_public_room_list(lobby)
    eq(api.public_room_list_manager:room_is_in_public_room_list(lobby), true, "published")
    api.public_room_list_manager.remove_room_from_public_room_list(pub)
    eq(api.room_is_in_public_room_list(pub), false, "removed")
    eq(api.room_is_in_public_room_list("!nope:example.org"), false, "unknown room")`},
		{name: "publishing an unknown room", lua: `api.public_room_list_manager.add_room_to_public_room_list("!nope:example.org")`,
			wantErr: "public_room_list_manager.add_room_to_public_room_list: public room list: room !nope:example.org: not found"},
		{name: "worker_name", top: "instance_name: worker1\n", lua: `
    eq(api.worker_name, "worker1", "worker_name")`},
		{name: "identifiers", lua: `
    local u = api.UserID.from_string("@alice:example.org")
    eq(u.localpart, "alice", "localpart")
    eq(u.domain, "example.org", "domain")
    eq(u:to_string(), "@alice:example.org", "to_string")
    eq(tostring(u), "@alice:example.org", "tostring")
    eq(u == api.UserID.from_string("@alice:example.org"), true, "equal")
    eq(u == api.UserID("alice", "example.org"), true, "constructor")
    eq(u == api.UserID.new("bob", "example.org"), false, "different")
    eq(api.is_mine(u), true, "is_mine takes a UserID")
    eq(api.UserID.from_string("@a:b:c").domain, "b:c", "split at the first colon")
    eq(api.UserID.is_valid("@alice:example.org:8448"), true, "with port")
    eq(api.UserID.is_valid("@alice:[::1]:8448"), true, "IPv6")
    eq(api.UserID.is_valid("@alice:exa mple.org"), false, "bad domain")
    eq(api.UserID.is_valid("@alice:example.org:99999"), false, "bad port")
    eq(api.UserID.is_valid("alice:example.org"), false, "no sigil")
    eq(api.UserID.is_valid(5), false, "not a string")
    eq(api.RoomID.from_string("!abc:example.org").localpart, "abc", "room localpart")
    local v12 = api.RoomID.from_string("!" .. string.rep("A", 43))
    eq(v12.domain, nil, "domainless room ID")
    eq(v12:to_string(), "!" .. string.rep("A", 43), "domainless to_string")
    eq(api.RoomID.is_valid("!short"), false, "short domainless")
    eq(api.RoomAlias.from_string("#lobby:example.org").domain, "example.org", "alias")
    eq(require("json").encode({u}), '["@alice:example.org"]', "json")
    local ok, err = pcall(api.UserID.from_string, "alice")
    eq(ok, false, "raises")
    eq(err.code, 400, "SynapseError code")
    eq(err.errcode, "M_INVALID_PARAM", "errcode")
    eq(err.msg, "Expected UserID string to start with '@'", "msg")
    ok, err = pcall(api.RoomAlias.from_string, "#nocolon")
    eq(err.msg, "Expected RoomAlias of the form '#localname:domain'", "msg")
    ok = pcall(function() u.localpart = "x" end)
    eq(ok, false, "read-only")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, roomID := seededHost(t)
			if tc.setup != nil {
				tc.setup(t, h, roomID)
			}
			e := newTestEngine(t, h, map[string]string{"t.lua": fmt.Sprintf(caseModule, tc.lua)},
				"server_name: example.org\n"+tc.top+"modules:\n  - module: t.lua\n")
			ev := hfEvent("@a:example.org", "x")
			ev.Content["room"] = roomID
			_, err := e.CheckEventForSpam(context.Background(), ev)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// A host with RoomStateGetter but not StateEventsGetter still serves
// get_state_events_in_room, from the state map.
type stateOnlyHost struct {
	nameHost
	h *memhost.Host
}

func (s stateOnlyHost) RoomState(ctx context.Context, roomID string, f []StateFilter) (StateMap, error) {
	return s.h.RoomState(ctx, roomID, f)
}

func TestGetStateEventsInRoomFromTheStateMap(t *testing.T) {
	h, roomID := seededHost(t)
	e := newTestEngine(t, stateOnlyHost{"example.org", h}, map[string]string{"t.lua": fmt.Sprintf(caseModule, `
    local evs = api.get_state_events_in_room(event.content.room, { {"m.room.create", ""}, {"m.room.member", nil} })
    eq(#evs, 2, "create and alice's membership")
    eq(evs[1].type, "m.room.create", "sorted by type")
    eq(#api.get_state_events_in_room("!nope:example.org"), 0, "unknown room")
    local ok, err = pcall(api.room_is_in_public_room_list, event.content.room)
    eq(ok, false, "no capability")
    eq(err:find("room_is_in_public_room_list: not supported by this homeserver", 1, true) ~= nil, true, err)`)},
		"server_name: example.org\nmodules:\n  - module: t.lua\n")
	ev := hfEvent("@a:example.org", "x")
	ev.Content["room"] = roomID
	if _, err := e.CheckEventForSpam(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// guestHost is memhost, with the access token "guest-token" of a guest.
type guestHost struct{ *memhost.Host }

func (g guestHost) UserByAccessToken(ctx context.Context, token string) (*Requester, error) {
	if token == "guest-token" {
		return &Requester{UserID: "@123:example.org", IsGuest: true}, nil
	}
	return g.Host.UserByAccessToken(ctx, token)
}

const whoModule = `local M = {}
function M.new(config, api)
  api.register_account_validity_callbacks{ is_user_expired = function(user)
    if user == "@bob:example.org" then return true end
    if user == "@alice:example.org" then return false end
    return nil -- no opinion: the homeserver's own rule decides
  end }
  api.register_web_resource("/_synapse/client/t/who", function(req)
    local mode = req.query.mode
    local r
    if mode == "allow_expired" then r = api.get_user_by_req(req, { allow_expired = true })
    elseif mode == "allow_guest" then r = api.get_user_by_req(req, { allow_guest = true })
    elseif mode == "positional" then r = api.get_user_by_req(req, false, true)
    elseif mode == "bad" then r = api.get_user_by_req(req, { allow_expird = true })
    else r = api.get_user_by_req(req) end
    return { json = r }
  end)
end
return M
`

func TestGetUserByReqChecksExpiryAndGuests(t *testing.T) {
	h := memhost.New("example.org")
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		tok, err := h.CreateUser(u, false)
		if err != nil {
			t.Fatal(err)
		}
		tokens[u] = tok
	}
	// carol's account expired by the server's own rule (no module has an
	// opinion on her); dave's expires in the future.
	if err := h.SetAccountExpiry("@carol:example.org", 1); err != nil {
		t.Fatal(err)
	}
	if err := h.SetAccountExpiry("@dave:example.org", 1<<62); err != nil {
		t.Fatal(err)
	}
	tokens["guest"] = "guest-token"
	e := newTestEngine(t, guestHost{h}, map[string]string{"t.lua": whoModule},
		"server_name: example.org\nmodules:\n  - module: t.lua\n")
	tests := []struct {
		who, mode  string
		status     int
		errcode    string
		wantUserID string
	}{
		{"alice", "", 200, "", "@alice:example.org"},
		{"bob", "", 403, "ORG_MATRIX_EXPIRED_ACCOUNT", ""},
		{"bob", "allow_expired", 200, "", "@bob:example.org"},
		{"bob", "positional", 200, "", "@bob:example.org"},
		{"carol", "", 403, "ORG_MATRIX_EXPIRED_ACCOUNT", ""},
		{"carol", "allow_expired", 200, "", "@carol:example.org"},
		{"dave", "", 200, "", "@dave:example.org"},
		{"guest", "", 403, "M_GUEST_ACCESS_FORBIDDEN", ""},
		{"guest", "allow_guest", 200, "", "@123:example.org"},
		{"", "", 401, "M_MISSING_TOKEN", ""},
		{"alice", "bad", 500, "M_UNKNOWN", ""},
	}
	for _, tc := range tests {
		t.Run(tc.who+"_"+tc.mode, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/_synapse/client/t/who?mode="+tc.mode, nil)
			if tc.who != "" {
				req.Header.Set("Authorization", "Bearer "+tokens[tc.who])
			}
			rec := httptest.NewRecorder()
			e.Handler().ServeHTTP(rec, req)
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if rec.Code != tc.status || (tc.errcode != "" && body["errcode"] != tc.errcode) ||
				(tc.wantUserID != "" && body["user_id"] != tc.wantUserID) {
				t.Fatalf("got %d %s", rec.Code, rec.Body)
			}
		})
	}
}

const legacyModule = `local M = {}
function M.new(config, api)
  api.register_account_validity_callbacks{
    on_legacy_send_mail = function(user_id)
      if user_id == "@nobody:example.org" then error(api.SynapseError(400, "User has no email")) end
      api.store.set("mailed", user_id)
    end,
    on_legacy_renew = function(token)
      if token == "good" then return true, false, 1700000000000 end
      if token == "used" then return {false, true, 1600000000000} end
      if token == "weird" then return "yes" end
      return false, false, 0
    end,
    on_legacy_admin_request = function(req)
      local body = req:json()
      if body.expiration_ts == nil then return nil end
      return body.expiration_ts
    end,
  }
end
return M
`

func TestLegacyAccountValidityCallbacks(t *testing.T) {
	e := newTestEngine(t, nameHost("example.org"), map[string]string{"v.lua": legacyModule},
		"server_name: example.org\nstorage: {backend: memory}\nmodules:\n  - module: v.lua\n")
	ctx := context.Background()
	for _, cb := range []Callback{CallbackOnLegacySendMail, CallbackOnLegacyRenew, CallbackOnLegacyAdminRequest} {
		if !e.Has(cb) {
			t.Errorf("Has(%v) is false", cb)
		}
	}
	if err := e.OnLegacySendMail(ctx, "@alice:example.org"); err != nil {
		t.Fatal(err)
	}
	var syn *SynapseError
	if err := e.OnLegacySendMail(ctx, "@nobody:example.org"); !errors.As(err, &syn) || syn.Code != 400 {
		t.Fatalf("a module's SynapseError reaches the host: %v", err)
	}
	renew := []struct {
		token string
		want  *LegacyRenewal
		err   string
	}{
		{"good", &LegacyRenewal{TokenValid: true, ExpirationTS: 1700000000000}, ""},
		{"used", &LegacyRenewal{TokenStale: true, ExpirationTS: 1600000000000}, ""},
		{"bad", &LegacyRenewal{}, ""},
		{"weird", nil, `on_legacy_renew must return token_valid, token_stale, expiration_ts (two booleans and an integer), got yes`},
	}
	for _, tc := range renew {
		got, err := e.OnLegacyRenew(ctx, tc.token)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want %q", tc.token, err, tc.err)
			}
			continue
		}
		if err != nil || *got != *tc.want {
			t.Errorf("%s: got %+v, %v", tc.token, got, err)
		}
	}
	req := httptest.NewRequest("POST", "/_synapse/admin/v1/account_validity/validity",
		bytes.NewReader([]byte(`{"user_id": "@alice:example.org", "expiration_ts": 1800000000000}`)))
	ts, ok, err := e.OnLegacyAdminRequest(ctx, req)
	if err != nil || !ok || ts != 1800000000000 {
		t.Fatalf("admin request: %d %v %v", ts, ok, err)
	}
	// The body is put back: a host falling back on its own handling reads it.
	req = httptest.NewRequest("POST", "/_synapse/admin/v1/account_validity/validity", strings.NewReader(`{"user_id": "@alice:example.org"}`))
	if _, ok, err := e.OnLegacyAdminRequest(ctx, req); err != nil || ok {
		t.Fatalf("nil answer: ok %v, %v", ok, err)
	}
	var body map[string]any
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil || body["user_id"] != "@alice:example.org" {
		t.Fatalf("the host cannot read the body after the module: %v %v", body, err)
	}
	// luahost call: the request argument is its JSON body.
	res, err := invoke.Call(ctx, e, "on_legacy_admin_request", []json.RawMessage{json.RawMessage(`{"expiration_ts": 5}`)})
	if err != nil || fmt.Sprint(res) != "5" {
		t.Fatalf("luahost call on_legacy_admin_request: %v %v", res, err)
	}
	res, err = invoke.Call(ctx, e, "on_legacy_renew", []json.RawMessage{json.RawMessage(`"good"`)})
	if b, _ := json.Marshal(res); err != nil || string(b) != "[true,false,1700000000000]" {
		t.Fatalf("luahost call on_legacy_renew: %s %v", b, err)
	}
	// Without a module, each reports that no module answered.
	var none *Engine
	if r, err := none.OnLegacyRenew(ctx, "good"); r != nil || err != nil {
		t.Fatalf("nil engine: %v %v", r, err)
	}
}

// Synapse lets one module register each legacy hook and raises at a
// second registration; callbacks that are not Synapse's fail with a
// message that says so.
func TestRegistrationsSynapseRefuses(t *testing.T) {
	legacy := func(cb string) string {
		return `return { new = function(c, api)
  api.register_account_validity_callbacks{ ` + cb + ` = function() end }
end }`
	}
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"a second module", map[string]string{"a.lua": legacy("on_legacy_renew"), "b.lua": legacy("on_legacy_renew")},
			`module "b": on_legacy_renew is already registered by module "a": Synapse allows only one module to register it`},
		{"twice in one module", map[string]string{"a.lua": `return { new = function(c, api)
  api.register_account_validity_callbacks{ on_legacy_send_mail = function() end }
  api.register_account_validity_callbacks{ on_legacy_send_mail = function() end }
end }`, "b.lua": legacy("is_user_expired")},
			"register_account_validity_callbacks: on_legacy_send_mail registered twice (Synapse allows one registration of it)"},
		{"a fork's callback", map[string]string{"a.lua": `return { new = function(c, api)
  api.register_spam_checker_callbacks{ user_may_join_room = function() end, accept_make_join = function() end }
end }`, "b.lua": legacy("is_user_expired")},
			"register_spam_checker_callbacks: accept_make_join exists only in a Synapse fork (maunium's, used by meowlnir and synapse-http-antispam); luahost supports the callbacks of Synapse " + luaapi.SynapseVersion},
		{"a removed callback", map[string]string{"a.lua": `return { new = function(c, api)
  api.register_spam_checker_callbacks{ user_may_create_room_with_invites = function() end }
end }`, "b.lua": legacy("is_user_expired")},
			"user_may_create_room_with_invites was removed in Synapse 1.53; use user_may_create_room"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadEngine(t, "server_name: example.org\nmodules:\n  - module: a.lua\n  - module: b.lua\n", tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v\nwant %q", err, tc.wantErr)
			}
		})
	}
}

// Arguments Synapse added to a callback later arrive as nil when the host
// (or `luahost call`) leaves them out, as Synapse calls modules written
// for older releases.
func TestLateArgumentsArriveAsNil(t *testing.T) {
	e := newTestEngine(t, nameHost("example.org"), map[string]string{"s.lua": `local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{
    user_may_create_room = function(user_id, room_config)
      if room_config == nil then return "M_NO_CONFIG" end
      return api.NOT_SPAM
    end,
    check_username_for_spam = function(profile, requester_id)
      return requester_id == nil
    end,
    check_registration_for_spam = function(email, username, info, auth_provider_id)
      if auth_provider_id == nil then return api.RegistrationBehaviour.DENY end
      return api.RegistrationBehaviour.ALLOW
    end,
  }
end
return M
`}, "server_name: example.org\nmodules:\n  - module: s.lua\n")
	ctx := context.Background()
	tests := []struct {
		callback string
		args     []string
		want     string
	}{
		{"user_may_create_room", []string{`"@a:example.org"`}, `"M_NO_CONFIG"`},
		{"user_may_create_room", []string{`"@a:example.org"`, `{"preset": "private_chat"}`}, `"NOT_SPAM"`},
		{"check_username_for_spam", []string{`{"user_id": "@a:example.org"}`}, `true`},
		{"check_username_for_spam", []string{`{"user_id": "@a:example.org"}`, `"@b:example.org"`}, `false`},
		{"check_registration_for_spam", []string{`null`, `"a"`, `[]`}, `"deny"`},
		{"check_registration_for_spam", []string{`null`, `"a"`, `[]`, `"oidc"`}, `"allow"`},
	}
	for _, tc := range tests {
		raw := make([]json.RawMessage, len(tc.args))
		for i, a := range tc.args {
			raw[i] = json.RawMessage(a)
		}
		res, err := invoke.Call(ctx, e, tc.callback, raw)
		b, _ := json.Marshal(res)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s(%s) = %s, %v; want %s", tc.callback, strings.Join(tc.args, ", "), b, err, tc.want)
		}
	}
	// Too few arguments is still an error that names them.
	if _, err := invoke.Call(ctx, e, "user_may_create_room", nil); err == nil ||
		!strings.Contains(err.Error(), "spam_checker.user_may_create_room takes 1 to 2 argument(s) (user_id: string, room_config: table (optional)), got 0") {
		t.Fatalf("no arguments: %v", err)
	}
	// The typed invokers: the zero value of a late argument is nil.
	d, err := e.UserMayCreateRoom(ctx, "@a:example.org", nil)
	if err != nil || d.Errcode != "M_NO_CONFIG" {
		t.Fatalf("UserMayCreateRoom(nil config) = %+v, %v", d, err)
	}
	if spammy, err := e.CheckUsernameForSpam(ctx, map[string]any{"user_id": "@a:example.org"}, ""); err != nil || !spammy {
		t.Fatalf(`CheckUsernameForSpam(requester "") = %v, %v`, spammy, err)
	}
}

// The arguments marked Late are exactly those Synapse accepts callbacks
// without (synapse/module_api/callbacks/spamchecker_callbacks.py of
// Synapse 1.157 inspects the callback's signature for these three; every
// other callback has had its arguments since it was introduced).
func TestLateArgumentsAreSynapses(t *testing.T) {
	want := map[string]string{
		"spam_checker.user_may_create_room":        "room_config",
		"spam_checker.check_username_for_spam":     "requester_id",
		"spam_checker.check_registration_for_spam": "auth_provider_id",
	}
	got := map[string]string{}
	for _, cat := range luaapi.Catalogue {
		for _, cb := range cat.Callbacks {
			for _, a := range cb.Args {
				if a.Late {
					got[cb.ID()] += a.Name
				}
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("late arguments %v, want %v", got, want)
	}
}

// A host that ignores the filter: the engine keeps only what was asked for.
type ignoringFilterHost struct {
	nameHost
	h *memhost.Host
}

func (w ignoringFilterHost) StateEvents(ctx context.Context, roomID string, _ []StateFilter) ([]*Event, error) {
	return w.h.StateEvents(ctx, roomID, nil)
}

// ignoringFilterStateHost is the same with only RoomStateGetter.
type ignoringFilterStateHost struct {
	nameHost
	h *memhost.Host
}

func (w ignoringFilterStateHost) RoomState(ctx context.Context, roomID string, _ []StateFilter) (StateMap, error) {
	return w.h.RoomState(ctx, roomID, nil)
}

func TestGetStateEventsInRoomAppliesTheFilter(t *testing.T) {
	h, roomID := seededHost(t)
	for name, host := range map[string]Host{"StateEventsGetter": ignoringFilterHost{"example.org", h}, "RoomStateGetter": ignoringFilterStateHost{"example.org", h}} {
		t.Run(name, func(t *testing.T) {
			e := newTestEngine(t, host, map[string]string{"t.lua": fmt.Sprintf(caseModule, `
    local evs = api.get_state_events_in_room(event.content.room, { {"m.room.name", ""} })
    eq(#evs, 1, "only the name")
    eq(evs[1].content.name, "Lobby", "name")`)},
				"server_name: example.org\nmodules:\n  - module: t.lua\n")
			ev := hfEvent("@a:example.org", "x")
			ev.Content["room"] = roomID
			if _, err := e.CheckEventForSpam(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		})
	}
}
