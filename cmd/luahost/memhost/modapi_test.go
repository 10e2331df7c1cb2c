package memhost

import (
	"errors"
	"testing"
	"time"

	"github.com/luahost/luahost/engine"
)

func TestThreepids(t *testing.T) {
	h := New(server)
	if _, err := h.RegisterUser(ctx, engine.NewUser{Localpart: "ann", Emails: []string{"Ann@Example.org"}}); err != nil {
		t.Fatal(err)
	}
	const ann = "@ann:example.org"
	if err := h.AddThreepid(ann, "msisdn", "447700900000"); err != nil {
		t.Fatal(err)
	}
	// AddEmail (the client API's) and AddThreepid keep one binding per address.
	if err := h.AddEmail(ctx, ann, "ANN@example.org"); err != nil {
		t.Fatal(err)
	}
	tps, err := h.ThreepidsForUser(ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	if len(tps) != 2 || tps[0].Medium != "email" || tps[0].Address != "ann@example.org" ||
		tps[1].Medium != "msisdn" || tps[1].Address != "447700900000" {
		t.Fatalf("threepids %+v", tps)
	}
	if now := time.Now().UnixMilli(); tps[0].AddedAt <= 0 || tps[0].AddedAt > now || tps[0].ValidatedAt != tps[0].AddedAt {
		t.Errorf("times %+v (now %d)", tps[0], now)
	}
	if id, _ := h.UserByEmail(ctx, "ann@EXAMPLE.org"); id != ann {
		t.Errorf("UserByEmail = %q", id)
	}
	for _, bad := range []struct{ user, medium, address string }{
		{ann, "fax", "1"}, {ann, "email", ""}, {"@nobody:example.org", "email", "x@example.org"},
	} {
		if err := h.AddThreepid(bad.user, bad.medium, bad.address); err == nil {
			t.Errorf("AddThreepid(%q, %q, %q) accepted", bad.user, bad.medium, bad.address)
		}
	}
	if tps, err := h.ThreepidsForUser(ctx, "@nobody:example.org"); err != nil || tps == nil || len(tps) != 0 {
		t.Errorf("unknown user: %v, %v", tps, err)
	}
	// Deactivation unbinds them, as in Synapse.
	if _, err := h.Deactivate(ctx, ann, false); err != nil {
		t.Fatal(err)
	}
	if tps, _ := h.ThreepidsForUser(ctx, ann); len(tps) != 0 {
		t.Errorf("after deactivation: %+v", tps)
	}
}

func TestPublicRoomListAndStateEvents(t *testing.T) {
	h := newHost(t, "alice")
	pub := mustCreateRoom(t, h, "@alice:example.org", map[string]any{"visibility": "public", "name": "Pub"})
	priv := mustCreateRoom(t, h, "@alice:example.org", map[string]any{"preset": "public_chat"})
	for room, want := range map[string]bool{pub: true, priv: false, "!nope:example.org": false} {
		if got, err := h.RoomIsInPublicRoomList(ctx, room); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", room, got, err, want)
		}
	}
	if err := h.SetRoomInPublicRoomList(ctx, priv, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.RoomIsInPublicRoomList(ctx, priv); !got {
		t.Error("published room not listed")
	}
	if err := h.SetRoomInPublicRoomList(ctx, "!nope:example.org", true); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown room: %v", err)
	}
	evs, err := h.StateEvents(ctx, pub, []engine.StateFilter{{Type: "m.room.name"}, {Type: "m.room.member", AnyKey: true}})
	if err != nil || len(evs) != 2 || evs[0].Type != "m.room.member" || evs[1].Content["name"] != "Pub" {
		t.Fatalf("StateEvents: %+v, %v", evs, err)
	}
	if evs, err := h.StateEvents(ctx, "!nope:example.org", nil); err != nil || evs == nil || len(evs) != 0 {
		t.Errorf("unknown room: %v, %v", evs, err)
	}
}

func TestAccountExpiry(t *testing.T) {
	h := newHost(t, "ann", "bob")
	if err := h.SetAccountExpiry("@ann:example.org", time.Now().Add(-time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if err := h.SetAccountExpiry("@bob:example.org", time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]bool{"@ann:example.org": true, "@bob:example.org": false, "@nobody:example.org": false} {
		if got, err := h.IsAccountExpired(ctx, user); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", user, got, err, want)
		}
	}
	if err := h.SetAccountExpiry("@nobody:example.org", 1); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
}
