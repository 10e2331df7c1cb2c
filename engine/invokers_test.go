package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"
)

// modules builds a config with one module per source, in order.
func modules(t *testing.T, srcs ...string) *Engine {
	t.Helper()
	yaml := "server_name: example.org\nmodules:\n"
	files := map[string]string{}
	for i, src := range srcs {
		name := string(rune('a'+i)) + ".lua"
		yaml += "  - module: " + name + "\n"
		files[name] = src
	}
	return mustEngine(t, yaml, files)
}

func reg(category, body string) string {
	return `local M = {}
function M.new(config, api)
  api.register_` + category + `_callbacks{ ` + body + ` }
end
return M`
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var bg = context.Background()

func TestCheckEventAllowedCombine(t *testing.T) {
	replace := reg("third_party_rules", `check_event_allowed = function(ev, state)
		if ev.content.body == "swear" then
			local copy = ev:get_dict()
			copy.content.body = "****"
			return true, copy
		end
		return true
	end`)
	refuse := reg("third_party_rules", `check_event_allowed = function(ev, state)
		if ev.content.body == "swear" or ev.content.body == "no" then return false end
		if state["m.room.name"] and state["m.room.name"][""].content.name == "closed" then return false end
		return true
	end`)
	e := modules(t, replace, refuse)
	d, err := e.CheckEventAllowed(bg, msg("@a:example.org", "swear"), StateMap{})
	if err != nil || !d.Allowed() || d.Replacement == nil || d.Replacement.Content["body"] != "****" {
		t.Errorf("the first replacement wins and later modules are skipped: %+v %v", d, err)
	}
	d, err = e.CheckEventAllowed(bg, msg("@a:example.org", "no"), StateMap{})
	if err != nil || d.Allowed() || d.Replacement != nil {
		t.Errorf("a false refuses: %+v %v", d, err)
	}
	if se := d.Err(); se == nil || se.Code != 403 || se.Errcode != "M_FORBIDDEN" || se.Msg != "This event is not allowed in this context" {
		t.Errorf("a refusal answers 403 with Synapse's message: %+v", se)
	}
	state := StateMap{}
	empty := ""
	state.Put(&Event{Type: "m.room.name", StateKey: &empty, Content: map[string]any{"name": "closed"}})
	if d, _ := e.CheckEventAllowed(bg, msg("@a:example.org", "hi"), state); d.Allowed() {
		t.Error("the state map should reach the script")
	}
	if d, _ := e.CheckEventAllowed(bg, msg("@a:example.org", "hi"), StateMap{}); !d.Allowed() || d.Err() != nil {
		t.Error("default is allowed")
	}

	raising := modules(t, reg("third_party_rules", `check_event_allowed = function(ev)
		if ev.content.body == "syn" then error(api.SynapseError(451, "geo-blocked", "M_FORBIDDEN")) end
		local x = nil
		return x.y
	end`))
	d, err = raising.CheckEventAllowed(bg, msg("@a:example.org", "syn"), StateMap{})
	if se := d.Err(); err != nil || d.Allowed() || se == nil || se.Code != 451 || se.Msg != "geo-blocked" {
		t.Errorf("a SynapseError is the refusal, as raised: %+v %v", se, err)
	}
	d, err = raising.CheckEventAllowed(bg, msg("@a:example.org", "other"), StateMap{})
	if err != nil || d.Allowed() {
		t.Errorf("other errors refuse (closed): %+v %v", d, err)
	}
}

func TestOnCreateRoomChainsChanges(t *testing.T) {
	e := modules(t,
		reg("third_party_rules", `on_create_room = function(requester, content, is_admin)
			content.name = "[" .. requester.user_id .. "] " .. (content.name or "")
		end`),
		reg("third_party_rules", `on_create_room = function(requester, content, is_admin)
			assert(content.name:find("^%[@a:example.org%]"), "the second module sees the first one's change")
			content.topic = "set by b"
			if content.preset == "public_chat" and not is_admin then
				error(api.SynapseError(403, "only admins create public rooms", "M_FORBIDDEN"))
			end
			if content.preset == "crash" then error("bug") end
		end`))
	got, err := e.OnCreateRoom(bg, &Requester{UserID: "@a:example.org"}, map[string]any{"name": "room"}, false)
	if err != nil || got["name"] != "[@a:example.org] room" || got["topic"] != "set by b" {
		t.Errorf("changes should chain and come back: %v %v", got, err)
	}
	_, err = e.OnCreateRoom(bg, &Requester{UserID: "@a:example.org"}, map[string]any{"preset": "public_chat"}, false)
	if err == nil || !strings.Contains(err.Error(), "only admins") {
		t.Errorf("a SynapseError denies as is: %v", err)
	}
	_, err = e.OnCreateRoom(bg, &Requester{UserID: "@a:example.org"}, map[string]any{"preset": "crash"}, false)
	var refusal *SynapseError
	if !errors.As(err, &refusal) || refusal.Code != 403 || refusal.Msg != "Room creation forbidden with these parameters" {
		t.Errorf("another error denies with 403: %v", err)
	}
}

func TestBooleanChecksAndSkipPolicy(t *testing.T) {
	e := modules(t,
		reg("third_party_rules", `check_can_deactivate_user = function(user, by_admin) error("broken module") end,
			check_visibility_can_be_modified = function(room, state, vis) return nil end`),
		reg("third_party_rules", `check_can_deactivate_user = function(user, by_admin) return by_admin end,
			check_visibility_can_be_modified = function(room, state, vis) return vis ~= "public" end`))
	if ok, err := e.CheckCanDeactivateUser(bg, "@a:example.org", true); err != nil || !ok {
		t.Errorf("an erroring module is skipped: %v %v", ok, err)
	}
	if ok, _ := e.CheckCanDeactivateUser(bg, "@a:example.org", false); ok {
		t.Error("the first false denies")
	}
	if ok, _ := e.CheckVisibilityCanBeModified(bg, "!r:example.org", StateMap{}, "private"); !ok {
		t.Error("nil is no opinion")
	}
	if ok, _ := e.CheckVisibilityCanBeModified(bg, "!r:example.org", StateMap{}, "public"); ok {
		t.Error("the second module's false denies")
	}
}

func TestPresenceRouterUnionsAndAll(t *testing.T) {
	e := modules(t,
		reg("presence_router", `get_users_for_states = function(states)
				return { ["@bob:example.org"] = { states[1] } }
			end,
			get_interested_users = function(user)
				if user == "@bot:example.org" then return api.PRESENCE_ALL_USERS end
				return { "@bob:example.org", "@carol:example.org" }
			end`),
		reg("presence_router", `get_users_for_states = function(states)
				return { ["@bob:example.org"] = states, ["@dan:example.org"] = { states[2] } }
			end,
			get_interested_users = function(user) return { "@carol:example.org", "@dan:example.org" } end`))
	users, err := e.GetInterestedUsers(bg, "@alice:example.org")
	if err != nil || users.All || asJSON(t, users.Users) != `["@bob:example.org","@carol:example.org","@dan:example.org"]` {
		t.Errorf("union: %+v %v", users, err)
	}
	users, _ = e.GetInterestedUsers(bg, "@bot:example.org")
	if !users.All || users.Users != nil {
		t.Errorf("ALL wins: %+v", users)
	}
	got, err := e.GetUsersForStates(bg, []PresenceState{
		{UserID: "@alice:example.org", State: "online"}, {UserID: "@erin:example.org", State: "offline"}})
	if err != nil || len(got["@bob:example.org"]) != 2 || len(got["@dan:example.org"]) != 1 {
		t.Errorf("merged with arrays unioned: %v %v", got, err)
	}

	_, err = loadEngine(t, "server_name: x\nmodules:\n  - module: p.lua\n", map[string]string{
		"p.lua": reg("presence_router", `get_interested_users = function() return {} end`)})
	if err == nil || !strings.Contains(err.Error(), "register every one of get_users_for_states, get_interested_users or none (got only get_interested_users)") {
		t.Errorf("a router with one callback is a load error: %v", err)
	}
}

func TestUnsignedFieldsMergeLastWinsAndKeepExisting(t *testing.T) {
	e := modules(t,
		reg("add_extra_fields_to_unsigned_client_event", `add_field_to_unsigned_callback = function(ev)
			return { a = 1, shared = "first", age = 99 } end`),
		reg("add_extra_fields_to_unsigned_client_event", `add_field_to_unsigned_callback = function(ev)
			return { b = 2, shared = "last" } end`))
	ev := msg("@a:example.org", "x")
	ev.Unsigned = map[string]any{"age": 5.0}
	got, err := e.AddFieldsToUnsigned(bg, ev)
	if err != nil || asJSON(t, got) != `{"a":1,"b":2,"shared":"last"}` {
		t.Errorf("merge: %s %v", asJSON(t, got), err)
	}
}

func TestBackgroundUpdateControllerOnlyFirstRegistrant(t *testing.T) {
	e := modules(t,
		reg("background_update_controller", `on_update = function(name, db, one_shot) return 250 end,
			min_batch_size = function() return 7 end`),
		reg("background_update_controller", `on_update = function() return 999 end,
			default_batch_size = function() return 500 end`))
	u, err := e.OnUpdate(bg, "u", "main", false)
	if err != nil || u.DurationMS != 250 {
		t.Errorf("the first controller answers: %+v %v", u, err)
	}
	if n, _ := e.DefaultBatchSize(bg, "u", "main"); n != 100 {
		t.Errorf("the second module's default_batch_size is ignored (default 100), got %d", n)
	}
	if n, _ := e.MinBatchSize(bg, "u", "main"); n != 7 {
		t.Errorf("min_batch_size from the first module: %d", n)
	}
}

func TestAuthCheckers(t *testing.T) {
	e := modules(t,
		reg("password_auth_provider", `auth_checkers = {
			["m.login.password"] = { fields = { "password" }, check = function(user, login_type, dict)
				assert(dict.password and dict.extra == nil, "only the declared fields arrive")
				if dict.password == "open sesame" then
					return api.get_qualified_user_id(user), function(resp) assert(resp.access_token) end
				end
			end },
		}`),
		reg("password_auth_provider", `auth_checkers = {
			["m.login.password"] = { fields = { "password" }, check = function(user, login_type, dict)
				if dict.password == "second" then return "@second:example.org" end
			end },
		}`))
	res, err := e.CheckAuth(bg, "alice", "m.login.password", map[string]any{"password": "open sesame", "extra": 1})
	if err != nil || res == nil || res.UserID != "@alice:example.org" {
		t.Fatalf("accept: %+v %v", res, err)
	}
	if err := res.LoggedIn(bg, map[string]any{"access_token": "t", "user_id": "@alice:example.org"}); err != nil {
		t.Errorf("on_logged_in: %v", err)
	}
	if res, _ := e.CheckAuth(bg, "bob", "m.login.password", map[string]any{"password": "second"}); res == nil || res.UserID != "@second:example.org" {
		t.Errorf("asked in order until one accepts: %+v", res)
	}
	if res, _ := e.CheckAuth(bg, "bob", "m.login.password", map[string]any{"password": "wrong"}); res != nil {
		t.Errorf("nobody accepts: %+v", res)
	}
	if lt := e.LoginTypes(); len(lt["m.login.password"]) != 1 {
		t.Errorf("login types: %v", lt)
	}

	_, err = loadEngine(t, "server_name: x\nmodules:\n  - module: a.lua\n  - module: b.lua\n", map[string]string{
		"a.lua": reg("password_auth_provider", `auth_checkers = { ["org.example.sso"] = { fields = {"token"}, check = function() end } }`),
		"b.lua": reg("password_auth_provider", `auth_checkers = { ["org.example.sso"] = { fields = {"secret"}, check = function() end } }`),
	})
	if err == nil || !strings.Contains(err.Error(), `login type "org.example.sso" is already declared by module "a"`) {
		t.Errorf("same login type, different fields: %v", err)
	}
}

func TestRegistrationAndMediaAndRatelimit(t *testing.T) {
	e := modules(t,
		reg("spam_checker", `check_registration_for_spam = function(email, username, info, provider)
			if username == "bot" then return api.RegistrationBehaviour.SHADOW_BAN end
			return api.RegistrationBehaviour.ALLOW end`),
		reg("media_repository", `get_media_upload_limits_for_user = function(user)
				if user == "@free:example.org" then return nil end
				return { { max_bytes = 10, time_period_ms = 1000 }, { max_bytes = 100, time_period_ms = 86400000 } }
			end,
			is_user_allowed_to_upload_media_of_size = function(user, size) return size < 1000 end`),
		reg("ratelimit", `get_ratelimit_override_for_user = function(user, limiter)
			if user == "@bot:example.org" then return { per_second = 0, burst_count = 0 } end end`))
	if b, _ := e.CheckRegistrationForSpam(bg, nil, "bot", nil, ""); b != RegistrationShadowBan {
		t.Errorf("registration: %s", b)
	}
	if b, _ := e.CheckRegistrationForSpam(bg, nil, "human", nil, ""); b != RegistrationAllow {
		t.Errorf("registration: %s", b)
	}
	limits, err := e.GetMediaUploadLimitsForUser(bg, "@a:example.org")
	if err != nil || len(limits) != 2 || limits[0].TimePeriodMS != 86400000 {
		t.Errorf("limits sorted by period descending: %+v %v", limits, err)
	}
	if l, _ := e.GetMediaUploadLimitsForUser(bg, "@free:example.org"); l != nil {
		t.Errorf("nil means no module answered: %+v", l)
	}
	if ok, _ := e.IsUserAllowedToUploadMediaOfSize(bg, "@a:example.org", 5000); ok {
		t.Error("too large")
	}
	o, err := e.GetRatelimitOverrideForUser(bg, "@bot:example.org", "rc_message")
	if err != nil || o == nil || o.PerSecond != 0 {
		t.Errorf("override: %+v %v", o, err)
	}
	if o, _ := e.GetRatelimitOverrideForUser(bg, "@human:example.org", "rc_message"); o != nil {
		t.Errorf("no override: %+v", o)
	}
}

func TestNotificationsFireWithoutWaitingAndOverflowIsCounted(t *testing.T) {
	e := modules(t, reg("third_party_rules", `on_new_event = function(ev, state)
		if ev.content.body == "slow" then api.sleep(0.5) end
	end`))
	start := time.Now()
	e.FireOnNewEvent(msg("@a:example.org", "slow"), StateMap{}) // holds the queue up
	time.Sleep(20 * time.Millisecond)
	accepted := 0
	for i := 0; i < NotificationQueueSize+50; i++ {
		if e.FireOnNewEvent(msg("@a:example.org", "x"), StateMap{}) {
			accepted++
		}
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("firing should not wait for the callbacks")
	}
	if e.Dropped() == 0 || accepted+int(e.Dropped()) != NotificationQueueSize+50 {
		t.Errorf("overflow must be counted: accepted %d, dropped %d", accepted, e.Dropped())
	}
	// Nothing registered: nothing queued, nothing dropped.
	e2 := modules(t, reg("spam_checker", `check_event_for_spam = function() return api.NOT_SPAM end`))
	if !e2.FireOnNewEvent(msg("@a:example.org", "x"), StateMap{}) || e2.Dropped() != 0 {
		t.Error("firing a callback nobody registered is a no-op")
	}
}

func TestHas(t *testing.T) {
	e := modules(t, reg("spam_checker", `user_may_invite = function(a, b, r) return api.NOT_SPAM end`))
	if !e.Has(CallbackUserMayInvite) || e.Has(CallbackCheckEventForSpam) || e.Has(Callback(0)) || e.Has(Callback(10000)) {
		t.Error("Has reports registrations")
	}
	if CallbackUserMayInvite.String() != "spam_checker.user_may_invite" {
		t.Errorf("String = %q", CallbackUserMayInvite.String())
	}
}
