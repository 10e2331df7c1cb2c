package memhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/luahost/luahost/engine"
)

const server = "example.org"

var ctx = context.Background()

// newHost returns a host with the given local users registered.
func newHost(t *testing.T, localparts ...string) *Host {
	t.Helper()
	h := New(server)
	for _, lp := range localparts {
		if _, err := h.RegisterUser(ctx, engine.NewUser{Localpart: lp}); err != nil {
			t.Fatalf("RegisterUser(%q): %v", lp, err)
		}
	}
	return h
}

func mustCreateRoom(t *testing.T, h *Host, creator string, config map[string]any) string {
	t.Helper()
	roomID, _, err := h.CreateRoom(ctx, creator, config)
	if err != nil {
		t.Fatalf("CreateRoom(%s, %v): %v", creator, config, err)
	}
	return roomID
}

func membership(t *testing.T, h *Host, roomID, userID string) string {
	t.Helper()
	st, err := h.RoomState(ctx, roomID, []engine.StateFilter{{Type: "m.room.member", StateKey: userID}})
	if err != nil {
		t.Fatalf("RoomState: %v", err)
	}
	ev := st.Get("m.room.member", userID)
	if ev == nil {
		return ""
	}
	m, _ := ev.Content["membership"].(string)
	return m
}

func TestRegisterDeviceTokenRoundTrip(t *testing.T) {
	h := New(server)
	id, err := h.RegisterUser(ctx, engine.NewUser{Localpart: "alice", Admin: true})
	if err != nil || id != "@alice:example.org" {
		t.Fatalf("RegisterUser = %q, %v", id, err)
	}
	for _, tc := range []struct {
		name     string
		deviceID string
	}{
		{"random device", ""},
		{"chosen device", "PHONE"},
		{"same device again", "PHONE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, err := h.RegisterDevice(ctx, id, tc.deviceID, "Phone")
			if err != nil {
				t.Fatal(err)
			}
			if tc.deviceID != "" && dev.DeviceID != tc.deviceID || dev.DeviceID == "" {
				t.Errorf("device ID %q, want %q (or random when empty)", dev.DeviceID, tc.deviceID)
			}
			if !strings.HasPrefix(dev.AccessToken, "syt_") || len(dev.AccessToken) < 30 {
				t.Errorf("access token %q does not look like syt_…", dev.AccessToken)
			}
			req, err := h.UserByAccessToken(ctx, dev.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			want := engine.Requester{UserID: id, DeviceID: dev.DeviceID, AccessToken: dev.AccessToken}
			if *req != want {
				t.Errorf("UserByAccessToken = %+v, want %+v", *req, want)
			}
		})
	}
	a, _ := h.RegisterDevice(ctx, id, "", "")
	b, _ := h.RegisterDevice(ctx, id, "", "")
	if a.DeviceID == b.DeviceID || a.AccessToken == b.AccessToken {
		t.Errorf("two random devices share an ID or token: %+v %+v", a, b)
	}
	if _, err := h.UserByAccessToken(ctx, "syt_nope"); err != engine.ErrNotFound {
		t.Errorf("unknown token: err = %v, want engine.ErrNotFound", err)
	}

	info, err := h.UserInfo(ctx, id)
	if err != nil || !info.IsAdmin || info.UserID != id || info.CreationTS <= 0 {
		t.Errorf("UserInfo = %+v, %v", info, err)
	}
	p, err := h.Profile(ctx, id)
	if err != nil || p.DisplayName != "alice" {
		t.Errorf("Profile = %+v, %v; want display name defaulting to the localpart", p, err)
	}
}

func TestCheckUserExists(t *testing.T) {
	h := newHost(t, "alice")
	for _, tc := range []struct{ in, want string }{
		{"@alice:example.org", "@alice:example.org"},
		{"@ALICE:example.org", "@alice:example.org"},
		{"@Alice:Example.ORG", "@alice:example.org"},
		{"@bob:example.org", ""},
		{"@alice:other.org", ""},
		{"alice", ""},
	} {
		got, err := h.CheckUserExists(ctx, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CheckUserExists(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestRegisterUserRefuses(t *testing.T) {
	h := newHost(t, "alice")
	for _, tc := range []struct {
		localpart string
		want      error
	}{
		{"alice", ErrUserInUse},
		{"Alice", ErrInvalid},
		{"", ErrInvalid},
		{"al ice", ErrInvalid},
		{"al:ice", ErrInvalid},
		{"_bridge", ErrInvalid},
		{"12345", ErrInvalid},
		{"é", ErrInvalid},
		{strings.Repeat("a", 250), ErrInvalid},
	} {
		_, err := h.RegisterUser(ctx, engine.NewUser{Localpart: tc.localpart})
		if !errors.Is(err, tc.want) {
			t.Errorf("RegisterUser(%q): err = %v, want %v", tc.localpart, err, tc.want)
		}
	}
	for _, ok := range []string{"bob", "b.o_b=x-y/z", "007bond"} {
		if _, err := h.RegisterUser(ctx, engine.NewUser{Localpart: ok}); err != nil {
			t.Errorf("RegisterUser(%q): %v", ok, err)
		}
	}
	if _, err := h.RegisterUser(ctx, engine.NewUser{Localpart: "carol", DisplayName: "Carol C."}); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.Profile(ctx, "@carol:example.org"); p.DisplayName != "Carol C." {
		t.Errorf("display name %q, want the one given", p.DisplayName)
	}
}

func TestUnknownUser(t *testing.T) {
	h := New(server)
	const nobody = "@nobody:example.org"
	if _, err := h.UserInfo(ctx, nobody); err != engine.ErrNotFound {
		t.Errorf("UserInfo: %v", err)
	}
	if _, err := h.Profile(ctx, nobody); err != engine.ErrNotFound {
		t.Errorf("Profile: %v", err)
	}
	if _, err := h.RegisterDevice(ctx, nobody, "", ""); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("RegisterDevice: %v", err)
	}
	if err := h.SetDisplayName(ctx, nobody, "x"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("SetDisplayName: %v", err)
	}
	if _, _, err := h.CreateRoom(ctx, nobody, nil); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("CreateRoom: %v", err)
	}
}

func TestCreateUser(t *testing.T) {
	h := New(server)
	tok1, err := h.CreateUser("@alice:example.org", false)
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := h.CreateUser("alice", true) // existing user: new device and token
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := h.UserByAccessToken(ctx, tok1)
	r2, _ := h.UserByAccessToken(ctx, tok2)
	if r1 == nil || r2 == nil || r1.UserID != "@alice:example.org" || r2.UserID != r1.UserID || r1.DeviceID == r2.DeviceID {
		t.Errorf("tokens resolve to %+v and %+v; want one user, two devices", r1, r2)
	}
	if info, _ := h.UserInfo(ctx, "@alice:example.org"); !info.IsAdmin {
		t.Error("CreateUser(admin=true) on an existing user did not make it admin")
	}
	for _, bad := range []string{"@bob:elsewhere.org", "Bob", "@:example.org"} {
		if _, err := h.CreateUser(bad, false); err == nil {
			t.Errorf("CreateUser(%q) succeeded", bad)
		}
	}
}

func TestCreateRoom(t *testing.T) {
	h := newHost(t, "alice", "bob", "carol")
	roomID, alias, err := h.CreateRoom(ctx, "@alice:example.org", map[string]any{
		"preset":          "public_chat",
		"room_alias_name": "lobby",
		"name":            "Lobby",
		"topic":           "Say hi",
		"invite":          []any{"@bob:example.org"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(roomID, "!") || !strings.HasSuffix(roomID, ":example.org") {
		t.Errorf("room ID %q", roomID)
	}
	if alias != "#lobby:example.org" {
		t.Errorf("alias %q", alias)
	}
	got, err := h.LookupRoomAlias(ctx, alias)
	if err != nil || got.RoomID != roomID || len(got.Servers) != 1 || got.Servers[0] != server {
		t.Errorf("LookupRoomAlias = %+v, %v", got, err)
	}
	if _, err := h.LookupRoomAlias(ctx, "#nope:example.org"); err != engine.ErrNotFound {
		t.Errorf("unknown alias: %v", err)
	}

	st, err := h.RoomState(ctx, roomID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ typ, key, field, want string }{
		{"m.room.create", "", "creator", "@alice:example.org"},
		{"m.room.member", "@alice:example.org", "membership", "join"},
		{"m.room.member", "@alice:example.org", "displayname", "alice"},
		{"m.room.member", "@bob:example.org", "membership", "invite"},
		{"m.room.join_rules", "", "join_rule", "public"},
		{"m.room.history_visibility", "", "history_visibility", "shared"},
		{"m.room.canonical_alias", "", "alias", "#lobby:example.org"},
		{"m.room.name", "", "name", "Lobby"},
		{"m.room.topic", "", "topic", "Say hi"},
	} {
		ev := st.Get(tc.typ, tc.key)
		if ev == nil {
			t.Errorf("no %s/%q state", tc.typ, tc.key)
			continue
		}
		if v, _ := ev.Content[tc.field].(string); v != tc.want {
			t.Errorf("%s/%q %s = %q, want %q", tc.typ, tc.key, tc.field, v, tc.want)
		}
	}
	if lvl := st.Get("m.room.power_levels", "").Content["users"].(map[string]any)["@alice:example.org"]; lvl != 100 {
		t.Errorf("creator power level %v, want 100", lvl)
	}

	events := h.Events(roomID)
	if len(events) != 9 || events[0].Type != "m.room.create" || events[len(events)-1].Type != "m.room.member" {
		t.Errorf("timeline has %d events from %s to %s; want 9, create first, invite last", len(events), events[0].Type, events[len(events)-1].Type)
	}
	ids := map[string]bool{}
	for _, ev := range events {
		if !strings.HasPrefix(ev.EventID, "$") || ids[ev.EventID] || ev.OriginServerTS <= 0 || ev.RoomID != roomID {
			t.Errorf("event %+v lacks a unique $event_id, origin_server_ts or room_id", ev)
		}
		ids[ev.EventID] = true
		if cur := st.Get(ev.Type, *ev.StateKey); cur == nil || cur.EventID != ev.EventID {
			t.Errorf("state %s/%q is not the timeline's event", ev.Type, *ev.StateKey)
		}
	}

	_, _, err = h.CreateRoom(ctx, "@carol:example.org", map[string]any{"room_alias_name": "lobby"})
	if !errors.Is(err, ErrAliasInUse) {
		t.Errorf("taken alias: err = %v, want ErrAliasInUse", err)
	}
}

func TestCreateRoomConfig(t *testing.T) {
	h := newHost(t, "alice", "bob")
	for _, tc := range []struct {
		name     string
		config   map[string]any
		joinRule string
		invite   any // power_levels invite
		wantErr  error
	}{
		{"default is private", nil, "invite", 0, nil},
		{"public visibility", map[string]any{"visibility": "public"}, "public", 50, nil},
		{"private preset wins over visibility", map[string]any{"visibility": "public", "preset": "private_chat"}, "invite", 0, nil},
		{"initial_state overrides the preset", map[string]any{"preset": "private_chat", "initial_state": []any{
			map[string]any{"type": "m.room.join_rules", "content": map[string]any{"join_rule": "public"}},
		}}, "public", 0, nil},
		{"initial_state power levels without content", map[string]any{
			"initial_state":                []any{map[string]any{"type": "m.room.power_levels"}},
			"power_level_content_override": map[string]any{"invite": 7},
		}, "invite", 7, nil},
		{"power level override", map[string]any{"power_level_content_override": map[string]any{"invite": 100}}, "invite", 100, nil},
		{"bad preset", map[string]any{"preset": "party"}, "", nil, ErrInvalid},
		{"name not a string", map[string]any{"name": 3}, "", nil, ErrInvalid},
		{"bad alias", map[string]any{"room_alias_name": "a:b"}, "", nil, ErrInvalid},
		{"bad invitee", map[string]any{"invite": []any{"bob"}}, "", nil, ErrInvalid},
		{"unknown local invitee", map[string]any{"invite": []string{"@zed:example.org"}}, "", nil, engine.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			roomID, _, err := h.CreateRoom(ctx, "@alice:example.org", tc.config)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			st, _ := h.RoomState(ctx, roomID, nil)
			if jr := st.Get("m.room.join_rules", "").Content["join_rule"]; jr != tc.joinRule {
				t.Errorf("join rule %v, want %s", jr, tc.joinRule)
			}
			if inv := st.Get("m.room.power_levels", "").Content["invite"]; inv != tc.invite {
				t.Errorf("invite level %v, want %v", inv, tc.invite)
			}
		})
	}
}

func TestUpdateMembership(t *testing.T) {
	h := newHost(t, "alice", "bob", "carol", "dave")
	const alice, bob, carol, dave = "@alice:example.org", "@bob:example.org", "@carol:example.org", "@dave:example.org"
	public := mustCreateRoom(t, h, alice, map[string]any{"preset": "public_chat"})
	private := mustCreateRoom(t, h, alice, map[string]any{"invite": []any{bob}})

	steps := []struct {
		name                      string
		room, sender, target, mem string
		wantErr                   error
		wantMem                   string // target's membership afterwards
	}{
		{"join a public room", public, carol, carol, "join", nil, "join"},
		{"join an invite-only room uninvited", private, carol, carol, "join", ErrForbidden, ""},
		{"join on someone's behalf", public, carol, dave, "join", ErrForbidden, ""},
		{"join after an invite", private, bob, bob, "join", nil, "join"},
		{"invite by a non-member", private, carol, dave, "invite", ErrForbidden, ""},
		{"invite a joined user", private, alice, bob, "invite", ErrForbidden, "join"},
		{"invite an unknown local user", private, alice, "@zed:example.org", "invite", engine.ErrNotFound, ""},
		{"invite a remote user", private, alice, "@zed:remote.org", "invite", nil, "invite"},
		{"kick without power", public, carol, alice, "leave", ErrForbidden, "join"},
		{"kick", public, alice, carol, "leave", nil, "leave"},
		{"leave a room one is not in", public, carol, carol, "leave", ErrForbidden, "leave"},
		{"ban without power", private, bob, alice, "ban", ErrForbidden, "join"},
		{"ban", public, alice, dave, "ban", nil, "ban"},
		{"banned user joins", public, dave, dave, "join", ErrForbidden, "ban"},
		{"unban", public, alice, dave, "leave", nil, "leave"},
		{"rejoin after unban", public, dave, dave, "join", nil, "join"},
		{"leave", public, dave, dave, "leave", nil, "leave"},
		{"unknown membership", public, alice, alice, "knock", ErrInvalid, "join"},
		{"bad target", public, alice, "dave", "invite", ErrInvalid, ""},
	}
	for _, s := range steps {
		ev, err := h.UpdateMembership(ctx, s.sender, s.target, s.room, s.mem, map[string]any{"reason": s.name})
		if !errors.Is(err, s.wantErr) {
			t.Errorf("%s: err = %v, want %v", s.name, err, s.wantErr)
		}
		if err == nil && (ev.Sender != s.sender || *ev.StateKey != s.target || ev.Content["membership"] != s.mem || ev.Content["reason"] != s.name) {
			t.Errorf("%s: event %+v", s.name, ev)
		}
		if got := membership(t, h, s.room, s.target); got != s.wantMem {
			t.Errorf("%s: %s is %q, want %q", s.name, s.target, got, s.wantMem)
		}
	}
	if _, err := h.UpdateMembership(ctx, alice, alice, "!nope:example.org", "join", nil); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown room: %v", err)
	}
}

func TestSendEvent(t *testing.T) {
	h := newHost(t, "alice", "bob", "carol")
	const alice, bob, carol = "@alice:example.org", "@bob:example.org", "@carol:example.org"
	roomID := mustCreateRoom(t, h, alice, map[string]any{"preset": "public_chat", "invite": []any{bob}})
	if _, err := h.UpdateMembership(ctx, carol, carol, roomID, "join", nil); err != nil {
		t.Fatal(err)
	}
	key := func(s string) *string { return &s }
	msg := map[string]any{"msgtype": "m.text", "body": "hi"}

	for _, tc := range []struct {
		name    string
		ev      *engine.Event
		wantErr error
	}{
		{"message from a member", &engine.Event{Type: "m.room.message", RoomID: roomID, Sender: carol, Content: msg}, nil},
		{"message from an invitee", &engine.Event{Type: "m.room.message", RoomID: roomID, Sender: bob, Content: msg}, ErrForbidden},
		{"message from a stranger", &engine.Event{Type: "m.room.message", RoomID: roomID, Sender: "@eve:example.org", Content: msg}, ErrForbidden},
		{"unknown room", &engine.Event{Type: "m.room.message", RoomID: "!nope:example.org", Sender: alice, Content: msg}, engine.ErrNotFound},
		{"no type", &engine.Event{RoomID: roomID, Sender: alice}, ErrInvalid},
		{"state by the creator", &engine.Event{Type: "m.room.name", StateKey: key(""), RoomID: roomID, Sender: alice, Content: map[string]any{"name": "New"}}, nil},
		{"state without power", &engine.Event{Type: "m.room.topic", StateKey: key(""), RoomID: roomID, Sender: carol, Content: map[string]any{"topic": "x"}}, ErrForbidden},
		{"state keyed by another user", &engine.Event{Type: "org.example.s", StateKey: key(carol), RoomID: roomID, Sender: alice, Content: map[string]any{}}, ErrForbidden},
		{"second create", &engine.Event{Type: "m.room.create", StateKey: key(""), RoomID: roomID, Sender: alice}, ErrForbidden},
		{"membership via SendEvent", &engine.Event{Type: "m.room.member", StateKey: key(bob), RoomID: roomID, Sender: bob, Content: map[string]any{"membership": "join"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.Events(roomID))
			ev, err := h.SendEvent(ctx, tc.ev)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			events := h.Events(roomID)
			if err != nil {
				if len(events) != before {
					t.Errorf("a refused event changed the timeline")
				}
				return
			}
			if !strings.HasPrefix(ev.EventID, "$") || ev.OriginServerTS <= 0 {
				t.Errorf("stored event %+v lacks event_id or origin_server_ts", ev)
			}
			if len(events) != before+1 || events[before].EventID != ev.EventID {
				t.Errorf("event not appended to the timeline")
			}
			if ev.IsState() {
				st, _ := h.RoomState(ctx, roomID, []engine.StateFilter{{Type: ev.Type, StateKey: *ev.StateKey}})
				if cur := st.Get(ev.Type, *ev.StateKey); cur == nil || cur.EventID != ev.EventID {
					t.Errorf("state not updated to the sent event")
				}
			}
		})
	}

	// The returned event and the caller's input are copies.
	in := &engine.Event{Type: "m.room.message", RoomID: roomID, Sender: alice, Content: map[string]any{"body": "orig"}}
	out, err := h.SendEvent(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	in.Content["body"] = "changed by caller"
	out.Content["body"] = "changed by caller"
	if evs := h.Events(roomID); evs[len(evs)-1].Content["body"] != "orig" {
		t.Error("the store shares content with the caller")
	}
	if in.EventID != "" {
		t.Error("SendEvent modified the caller's event")
	}
}

func TestRoomStateFilters(t *testing.T) {
	h := newHost(t, "alice", "bob")
	roomID := mustCreateRoom(t, h, "@alice:example.org", map[string]any{"name": "N", "invite": []any{"@bob:example.org"}})
	count := func(st engine.StateMap) (n int) {
		for _, byKey := range st {
			n += len(byKey)
		}
		return n
	}
	all, _ := h.RoomState(ctx, roomID, nil)
	for _, tc := range []struct {
		name   string
		filter []engine.StateFilter
		want   int
	}{
		{"no filter is everything", nil, count(all)},
		{"every member", []engine.StateFilter{{Type: "m.room.member", AnyKey: true}}, 2},
		{"one member", []engine.StateFilter{{Type: "m.room.member", StateKey: "@bob:example.org"}}, 1},
		{"name and create", []engine.StateFilter{{Type: "m.room.name"}, {Type: "m.room.create"}}, 2},
		{"wrong state key", []engine.StateFilter{{Type: "m.room.name", StateKey: "x"}}, 0},
		{"unknown type", []engine.StateFilter{{Type: "org.example.none", AnyKey: true}}, 0},
	} {
		st, err := h.RoomState(ctx, roomID, tc.filter)
		if err != nil || count(st) != tc.want {
			t.Errorf("%s: %d events, %v; want %d", tc.name, count(st), err, tc.want)
		}
	}
	if count(all) != 8 {
		t.Errorf("full state has %d events, want 8", count(all))
	}

	// Results are copies: mutating them leaves the room alone.
	all.Get("m.room.name", "").Content["name"] = "mutated"
	all.Get("m.room.power_levels", "").Content["users"].(map[string]any)["@bob:example.org"] = 100
	delete(all, "m.room.create")
	again, _ := h.RoomState(ctx, roomID, nil)
	if again.Get("m.room.name", "").Content["name"] != "N" || again.Get("m.room.create", "") == nil ||
		again.Get("m.room.power_levels", "").Content["users"].(map[string]any)["@bob:example.org"] != nil {
		t.Error("mutating a RoomState result changed the room")
	}
	if _, err := h.RoomState(ctx, "!nope:example.org", nil); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown room: %v", err)
	}
}

func TestSetDisplayNameUpdatesJoinedRooms(t *testing.T) {
	h := newHost(t, "alice")
	roomID := mustCreateRoom(t, h, "@alice:example.org", nil)
	if err := h.SetDisplayName(ctx, "@alice:example.org", "Alice A."); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.Profile(ctx, "@alice:example.org"); p.DisplayName != "Alice A." {
		t.Errorf("profile display name %q", p.DisplayName)
	}
	st, _ := h.RoomState(ctx, roomID, nil)
	ev := st.Get("m.room.member", "@alice:example.org")
	if ev.Content["displayname"] != "Alice A." || ev.Content["membership"] != "join" || ev.Unsigned["prev_content"] == nil {
		t.Errorf("member event after rename: %+v", ev)
	}
}

func TestAccountData(t *testing.T) {
	h := newHost(t, "alice")
	const alice = "@alice:example.org"
	got, err := h.GlobalAccountData(ctx, alice, "m.direct")
	if err != nil || got != nil {
		t.Errorf("no data: %v, %v; want nil, nil", got, err)
	}
	in := map[string]any{"@bob:example.org": []any{"!r:example.org"}}
	if err := h.PutGlobalAccountData(ctx, alice, "m.direct", in); err != nil {
		t.Fatal(err)
	}
	in["@bob:example.org"].([]any)[0] = "mutated"
	got, _ = h.GlobalAccountData(ctx, alice, "m.direct")
	if got["@bob:example.org"].([]any)[0] != "!r:example.org" {
		t.Errorf("stored data shares memory with the caller: %v", got)
	}
	got["x"] = 1
	if again, _ := h.GlobalAccountData(ctx, alice, "m.direct"); again["x"] != nil {
		t.Error("returned data shares memory with the store")
	}
	for _, tc := range []struct {
		user, typ string
		want      error
	}{
		{"@nobody:example.org", "t", engine.ErrNotFound},
		{"@bob:remote.org", "t", ErrInvalid},
		{alice, "", ErrInvalid},
	} {
		if err := h.PutGlobalAccountData(ctx, tc.user, tc.typ, nil); !errors.Is(err, tc.want) {
			t.Errorf("Put(%s, %q): %v, want %v", tc.user, tc.typ, err, tc.want)
		}
	}
}

func TestPresence(t *testing.T) {
	h := newHost(t, "alice")
	states := []engine.PresenceState{
		{UserID: "@alice:example.org", State: "online", StatusMsg: "here", CurrentlyActive: true},
		{UserID: "@bob:remote.org", State: "unavailable"},
	}
	if err := h.SetPresence(ctx, states); err != nil {
		t.Fatal(err)
	}
	for _, want := range states {
		if got, ok := h.Presence(want.UserID); !ok || got != want {
			t.Errorf("Presence(%s) = %+v, %v", want.UserID, got, ok)
		}
	}
	if _, ok := h.Presence("@carol:example.org"); ok {
		t.Error("presence for a user that never set it")
	}
	err := h.SetPresence(ctx, []engine.PresenceState{{UserID: "@alice:example.org", State: "offline"}, {UserID: "@alice:example.org", State: "busy"}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid state: %v", err)
	}
	if got, _ := h.Presence("@alice:example.org"); got.State != "online" {
		t.Error("a refused SetPresence stored part of its states")
	}

	targets := []string{"@bob:remote.org", "@alice:example.org"}
	if err := h.SendLocalOnlinePresenceTo(ctx, targets); err != nil {
		t.Fatal(err)
	}
	targets[0] = "mutated"
	_ = h.SendLocalOnlinePresenceTo(ctx, nil)
	sent := h.PresenceSentTo()
	if len(sent) != 2 || len(sent[0]) != 2 || sent[0][0] != "@bob:remote.org" || len(sent[1]) != 0 {
		t.Errorf("PresenceSentTo = %v", sent)
	}
}

func TestCancelledContext(t *testing.T) {
	h := newHost(t, "alice")
	roomID := mustCreateRoom(t, h, "@alice:example.org", nil)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	const alice = "@alice:example.org"
	calls := map[string]func() error{
		"CheckUserExists":   func() error { _, err := h.CheckUserExists(cctx, alice); return err },
		"UserInfo":          func() error { _, err := h.UserInfo(cctx, alice); return err },
		"Profile":           func() error { _, err := h.Profile(cctx, alice); return err },
		"SetDisplayName":    func() error { return h.SetDisplayName(cctx, alice, "x") },
		"RegisterUser":      func() error { _, err := h.RegisterUser(cctx, engine.NewUser{Localpart: "bob"}); return err },
		"RegisterDevice":    func() error { _, err := h.RegisterDevice(cctx, alice, "", ""); return err },
		"UserByAccessToken": func() error { _, err := h.UserByAccessToken(cctx, "t"); return err },
		"RoomState":         func() error { _, err := h.RoomState(cctx, roomID, nil); return err },
		"SendEvent": func() error {
			_, err := h.SendEvent(cctx, &engine.Event{Type: "m", RoomID: roomID, Sender: alice})
			return err
		},
		"UpdateMembership":          func() error { _, err := h.UpdateMembership(cctx, alice, alice, roomID, "leave", nil); return err },
		"CreateRoom":                func() error { _, _, err := h.CreateRoom(cctx, alice, nil); return err },
		"LookupRoomAlias":           func() error { _, err := h.LookupRoomAlias(cctx, "#a:example.org"); return err },
		"GlobalAccountData":         func() error { _, err := h.GlobalAccountData(cctx, alice, "t"); return err },
		"PutGlobalAccountData":      func() error { return h.PutGlobalAccountData(cctx, alice, "t", nil) },
		"SetPresence":               func() error { return h.SetPresence(cctx, nil) },
		"SendLocalOnlinePresenceTo": func() error { return h.SendLocalOnlinePresenceTo(cctx, nil) },
	}
	before := len(h.Events(roomID))
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v", name, err)
		}
	}
	if len(h.Events(roomID)) != before || len(h.PresenceSentTo()) != 0 {
		t.Error("a call with a cancelled context changed the server")
	}
}

// TestConcurrentUse runs 16 goroutines registering, creating rooms,
// joining, sending and reading at once; run it with -race.
func TestConcurrentUse(t *testing.T) {
	h := newHost(t, "alice")
	lobby := mustCreateRoom(t, h, "@alice:example.org", map[string]any{"preset": "public_chat", "room_alias_name": "lobby"})
	const workers, rounds = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				tok, err := h.CreateUser(fmt.Sprintf("user%d", w), false)
				if err != nil {
					return err
				}
				req, err := h.UserByAccessToken(ctx, tok)
				if err != nil {
					return err
				}
				me := req.UserID
				if _, err := h.UpdateMembership(ctx, me, me, lobby, "join", nil); err != nil {
					return err
				}
				own, _, err := h.CreateRoom(ctx, me, map[string]any{"invite": []any{"@alice:example.org"}})
				if err != nil {
					return err
				}
				for i := range rounds {
					if _, err := h.SendEvent(ctx, &engine.Event{Type: "m.room.message", RoomID: lobby, Sender: me,
						Content: map[string]any{"body": fmt.Sprint(i), "n": []any{i}}}); err != nil {
						return err
					}
					st, err := h.RoomState(ctx, lobby, []engine.StateFilter{{Type: "m.room.member", AnyKey: true}})
					if err != nil {
						return err
					}
					for _, ev := range st["m.room.member"] {
						ev.Content["scribble"] = true // callers own what they get
					}
					_ = h.Events(lobby)
					if err := h.PutGlobalAccountData(ctx, me, "org.example.n", map[string]any{"n": i}); err != nil {
						return err
					}
					if _, err := h.GlobalAccountData(ctx, me, "org.example.n"); err != nil {
						return err
					}
					if err := h.SetPresence(ctx, []engine.PresenceState{{UserID: me, State: "online"}}); err != nil {
						return err
					}
					_ = h.SendLocalOnlinePresenceTo(ctx, []string{me})
					if err := h.SetDisplayName(ctx, me, fmt.Sprintf("User %d/%d", w, i)); err != nil {
						return err
					}
					if _, err := h.CheckUserExists(ctx, strings.ToUpper(me)); err != nil {
						return err
					}
					if _, err := h.LookupRoomAlias(ctx, "#lobby:example.org"); err != nil {
						return err
					}
				}
				_, err = h.SendEvent(ctx, &engine.Event{Type: "m.room.topic", StateKey: new(string), RoomID: own, Sender: me,
					Content: map[string]any{"topic": me}})
				return err
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st, _ := h.RoomState(ctx, lobby, []engine.StateFilter{{Type: "m.room.member", AnyKey: true}})
	if len(st["m.room.member"]) != workers+1 {
		t.Errorf("lobby has %d members, want %d", len(st["m.room.member"]), workers+1)
	}
	msgs := 0
	for _, ev := range h.Events(lobby) {
		if ev.Type == "m.room.message" {
			msgs++
		}
		if ev.Content["scribble"] != nil {
			t.Fatal("a caller's write reached the store")
		}
	}
	if msgs != workers*rounds {
		t.Errorf("%d messages, want %d", msgs, workers*rounds)
	}
	if n := len(h.PresenceSentTo()); n != workers*rounds {
		t.Errorf("%d presence sends recorded, want %d", n, workers*rounds)
	}
}

// Power levels arrive in whatever shape the caller built them: float64
// from JSON, Go ints in typed maps, decimal strings from old rooms.
func TestPowerLevelShapes(t *testing.T) {
	h := newHost(t, "alice", "bob", "carol")
	const alice, bob, carol = "@alice:example.org", "@bob:example.org", "@carol:example.org"
	if h.ServerName() != server {
		t.Fatalf("ServerName = %q", h.ServerName())
	}
	for _, tc := range []struct {
		name  string
		users any
		kick  any
	}{
		{"json floats", map[string]any{alice: 100.0, bob: 50.0}, 50.0},
		{"typed Go map", map[string]int{alice: 100, bob: 50}, int64(50)},
		{"decimal strings", map[string]any{alice: "100", bob: "50"}, "50"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			roomID := mustCreateRoom(t, h, alice, map[string]any{"preset": "public_chat",
				"power_level_content_override": map[string]any{"users": tc.users, "kick": tc.kick}})
			for _, u := range []string{bob, carol} {
				if _, err := h.UpdateMembership(ctx, u, u, roomID, "join", nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := h.UpdateMembership(ctx, carol, bob, roomID, "leave", nil); !errors.Is(err, ErrForbidden) {
				t.Errorf("level 0 kicking level 50: %v", err)
			}
			if _, err := h.UpdateMembership(ctx, bob, alice, roomID, "leave", nil); !errors.Is(err, ErrForbidden) {
				t.Errorf("level 50 kicking level 100: %v", err)
			}
			if _, err := h.UpdateMembership(ctx, bob, carol, roomID, "leave", nil); err != nil {
				t.Errorf("level 50 kicking level 0: %v", err)
			}
		})
	}
}

func TestContentIsCopiedDeeply(t *testing.T) {
	h := newHost(t, "alice")
	roomID := mustCreateRoom(t, h, "@alice:example.org", nil)
	content := map[string]any{
		"tags":   []string{"a"},
		"counts": map[string]int{"x": 1},
		"nested": map[string]any{"list": []any{map[string]any{"k": "v"}}, "nil": nil},
	}
	ev, err := h.SendEvent(ctx, &engine.Event{Type: "org.example", RoomID: roomID, Sender: "@alice:example.org", Content: content})
	if err != nil {
		t.Fatal(err)
	}
	content["tags"].([]string)[0] = "mutated"
	content["counts"].(map[string]int)["x"] = 2
	content["nested"].(map[string]any)["list"].([]any)[0].(map[string]any)["k"] = "mutated"
	ev.Content["tags"].([]string)[0] = "mutated"
	stored := h.Events(roomID)
	got := stored[len(stored)-1].Content
	if got["tags"].([]string)[0] != "a" || got["counts"].(map[string]int)["x"] != 1 ||
		got["nested"].(map[string]any)["list"].([]any)[0].(map[string]any)["k"] != "v" {
		t.Errorf("stored content changed with the caller's: %v", got)
	}
}
