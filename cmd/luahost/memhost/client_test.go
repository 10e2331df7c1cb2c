package memhost

import (
	"errors"
	"testing"

	"github.com/luahost/luahost/engine"
)

func TestPasswords(t *testing.T) {
	h := newHost(t, "alice")
	if err := h.SetPassword(ctx, "@alice:example.org", "s3cret"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, password, want string
	}{
		{"@alice:example.org", "s3cret", "@alice:example.org"},
		{"@ALICE:example.org", "s3cret", "@alice:example.org"}, // IDs match ignoring case
		{"@alice:example.org", "S3cret", ""},
		{"@alice:example.org", "", ""},
		{"@bob:example.org", "s3cret", ""},
	}
	for _, tt := range tests {
		got, err := h.CheckPassword(ctx, tt.user, tt.password)
		if err != nil || got != tt.want {
			t.Errorf("CheckPassword(%s, %q) = %q, %v; want %q", tt.user, tt.password, got, err, tt.want)
		}
	}
}

func TestDevicesAndDeactivation(t *testing.T) {
	h := newHost(t, "alice", "bob")
	phone, _ := h.RegisterDevice(ctx, "@alice:example.org", "PHONE", "")
	laptop, _ := h.RegisterDevice(ctx, "@alice:example.org", "LAPTOP", "")
	again, _ := h.RegisterDevice(ctx, "@alice:example.org", "LAPTOP", "")
	removed, err := h.DeleteDevices(ctx, "@alice:example.org", []string{"LAPTOP"})
	if err != nil || len(removed) != 2 {
		t.Fatalf("DeleteDevices(LAPTOP) removed %v, %v; want both laptop tokens", removed, err)
	}
	for _, tok := range []string{laptop.AccessToken, again.AccessToken} {
		if _, err := h.UserByAccessToken(ctx, tok); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("a laptop token still works: %v", err)
		}
	}
	if _, err := h.UserByAccessToken(ctx, phone.AccessToken); err != nil {
		t.Fatalf("the phone token stopped working: %v", err)
	}

	room := mustCreateRoom(t, h, "@bob:example.org", map[string]any{"preset": "public_chat", "invite": []any{"@alice:example.org"}})
	other := mustCreateRoom(t, h, "@bob:example.org", map[string]any{"preset": "public_chat"})
	if _, err := h.UpdateMembership(ctx, "@alice:example.org", "@alice:example.org", other, "join", nil); err != nil {
		t.Fatal(err)
	}
	h.SetPassword(ctx, "@alice:example.org", "pw")
	removed, err = h.Deactivate(ctx, "@alice:example.org", true)
	if err != nil || len(removed) != 1 || removed[0].DeviceID != "PHONE" {
		t.Fatalf("Deactivate removed %v, %v; want the phone", removed, err)
	}
	info, _ := h.UserInfo(ctx, "@alice:example.org")
	if !info.Deactivated {
		t.Error("UserInfo does not say deactivated")
	}
	if id, _ := h.CheckPassword(ctx, "@alice:example.org", "pw"); id != "" {
		t.Error("a deactivated user's password still works")
	}
	if m := membership(t, h, room, "@alice:example.org"); m != "leave" {
		t.Errorf("the invite is %q after deactivation; want rejected (leave)", m)
	}
	if m := membership(t, h, other, "@alice:example.org"); m != "leave" {
		t.Errorf("membership %q after deactivation; want leave", m)
	}
	if p, _ := h.Profile(ctx, "@alice:example.org"); p.DisplayName != "" {
		t.Errorf("erase kept the display name %q", p.DisplayName)
	}
}

// A check refusing with ErrCommitSoFar keeps the room up to the refused
// event; any other error leaves no room and no alias.
func TestCreateRoomChecked(t *testing.T) {
	h := newHost(t, "alice", "bob", "carol")
	config := map[string]any{"room_alias_name": "team", "invite": []any{"@bob:example.org", "@carol:example.org"}}
	refuse := func(stop error) EventCheck {
		return func(ev *engine.Event, before engine.StateMap) (*engine.Event, error) {
			if ev.Type == evMember && *ev.StateKey == "@carol:example.org" {
				return nil, stop
			}
			if ev.Type == evName {
				return &engine.Event{Content: map[string]any{"name": "renamed"}}, nil
			}
			return nil, nil
		}
	}
	boom := errors.New("boom")
	if id, _, err := h.CreateRoomChecked(ctx, "@alice:example.org", config, refuse(boom)); id != "" || !errors.Is(err, boom) {
		t.Fatalf("refused: room %q, %v; want no room and the check's error", id, err)
	}
	if _, err := h.LookupRoomAlias(ctx, "#team:example.org"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("the alias of a refused room exists: %v", err)
	}
	config["name"] = "Team"
	id, alias, err := h.CreateRoomChecked(ctx, "@alice:example.org", config, refuse(ErrCommitSoFar))
	if id == "" || alias != "#team:example.org" || !errors.Is(err, ErrCommitSoFar) {
		t.Fatalf("CreateRoomChecked = %q, %q, %v", id, alias, err)
	}
	if m := membership(t, h, id, "@bob:example.org"); m != "invite" {
		t.Errorf("bob's membership %q; want the invite before the refused one", m)
	}
	if m := membership(t, h, id, "@carol:example.org"); m != "" {
		t.Errorf("carol's membership %q; want none", m)
	}
	st, _ := h.RoomState(ctx, id, []engine.StateFilter{{Type: evName}})
	if n := st.Get(evName, ""); n == nil || n.Content["name"] != "renamed" {
		t.Errorf("name event %v; want the check's replacement content", n)
	}
}

func TestSyncAndMessages(t *testing.T) {
	h := newHost(t, "alice", "bob")
	room := mustCreateRoom(t, h, "@alice:example.org", map[string]any{"invite": []any{"@bob:example.org"}})
	initial, err := h.Sync(ctx, "@bob:example.org", 0, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(initial.Invite) != 1 || len(initial.Join) != 0 {
		t.Fatalf("bob's initial sync: %d invites, %d joined; want the invite only", len(initial.Invite), len(initial.Join))
	}
	since := initial.Pos
	if _, err := h.UpdateMembership(ctx, "@bob:example.org", "@bob:example.org", room, "join", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := h.SendEvent(ctx, &engine.Event{Type: "m.room.message", RoomID: room, Sender: "@alice:example.org",
			Content: map[string]any{"body": string(rune('a' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-initial.Wake:
	default:
		t.Fatal("the snapshot's Wake channel is still open after changes")
	}
	snap, err := h.Sync(ctx, "@bob:example.org", since, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Join) != 1 {
		t.Fatalf("bob's sync after joining: %d joined rooms", len(snap.Join))
	}
	rs := snap.Join[0]
	if len(rs.Timeline) != 2 || !rs.Limited || rs.Timeline[1].Event.Content["body"] != "c" || len(rs.State) == 0 {
		t.Fatalf("timeline %d events (limited %v), state %d; want the last 2, limited, with the state", len(rs.Timeline), rs.Limited, len(rs.State))
	}
	if !snap.RoomMates["@alice:example.org"] || snap.RoomMates["@bob:example.org"] {
		t.Errorf("room mates %v; want alice, not bob himself", snap.RoomMates)
	}
	nothing, _ := h.Sync(ctx, "@bob:example.org", snap.Pos, 10, false)
	if !nothing.Empty() {
		t.Errorf("a sync at the latest position is not empty: %+v", nothing)
	}

	// Paging backwards, two at a time, reaches the create event.
	var all []TimelineEvent
	from := h.Position()
	for {
		page, next, err := h.Messages(ctx, room, "@bob:example.org", from, true, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next < 0 {
			break
		}
		from = next
	}
	if got := len(all); got != len(h.Events(room)) || all[len(all)-1].Event.Type != evCreate {
		t.Fatalf("paged %d events ending with %s; want all %d, the create event last", got, all[len(all)-1].Event.Type, len(h.Events(room)))
	}
	forward, _, _ := h.Messages(ctx, room, "@bob:example.org", since, false, 100)
	if len(forward) != 4 { // the join and three messages
		t.Errorf("forward from the first sync: %d events; want 4", len(forward))
	}
	if _, _, err := h.Messages(ctx, room, "@carol:example.org", from, true, 2); !errors.Is(err, ErrForbidden) {
		t.Errorf("a stranger reads the room: %v", err)
	}
}

func TestShutdownRoom(t *testing.T) {
	h := newHost(t, "alice", "bob")
	room := mustCreateRoom(t, h, "@alice:example.org", map[string]any{"preset": "public_chat", "room_alias_name": "gone"})
	h.UpdateMembership(ctx, "@bob:example.org", "@bob:example.org", room, "join", nil)
	since := h.Position()
	kicked, aliases, err := h.ShutdownRoom(ctx, room)
	if err != nil || len(kicked) != 2 || len(aliases) != 1 {
		t.Fatalf("ShutdownRoom = %v, %v, %v", kicked, aliases, err)
	}
	if _, err := h.RoomState(ctx, room, nil); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("the deleted room still answers: %v", err)
	}
	snap, _ := h.Sync(ctx, "@bob:example.org", since, 10, false)
	if len(snap.Leave) != 1 {
		t.Errorf("bob's sync after the shutdown has %d left rooms; want 1", len(snap.Leave))
	}
}
