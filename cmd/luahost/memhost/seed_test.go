package memhost

import (
	"context"
	"strings"
	"testing"

	"github.com/luahost/luahost/engine"
)

const fullFixture = `{
  "users": [
    {"id": "@alice:example.org", "admin": true, "displayname": "Alice", "avatar_url": "mxc://example.org/a", "token": "alice-token"},
    {"id": "bob", "devices": [{"device_id": "PHONE", "display_name": "Bob's phone", "token": "bob-phone"}]},
    {"id": "@mallory:example.org", "shadow_banned": true}
  ],
  "rooms": [
    {"id": "!lobby:example.org", "members": ["@alice:example.org", "@bob:example.org"], "public": true,
     "alias": "#lobby:example.org", "name": "Lobby", "topic": "Say hi",
     "state": [{"type": "org.example.rules", "content": {"max": 3}}]},
    {"id": "!private:example.org", "creator": "@alice:example.org",
     "members": {"@bob:example.org": "invite", "@mallory:example.org": "ban"},
     "power_levels": {"users": {"@alice:example.org": 100, "@bob:example.org": 50}}}
  ],
  "account_data": {"@alice:example.org": {"m.direct": {"@bob:example.org": ["!private:example.org"]}}},
  "threepids": [{"user_id": "@alice:example.org", "medium": "email", "address": "alice@example.org"}]
}`

func TestSeedFixture(t *testing.T) {
	h := New("example.org")
	f, err := ParseFixture([]byte(fullFixture))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Seed(f); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	info, err := h.UserInfo(ctx, "@alice:example.org")
	if err != nil || !info.IsAdmin {
		t.Errorf("alice: %+v, %v; want an admin", info, err)
	}
	if info, _ := h.UserInfo(ctx, "@mallory:example.org"); info == nil || !info.ShadowBanned {
		t.Errorf("mallory: %+v; want shadow-banned", info)
	}
	if p, _ := h.Profile(ctx, "@alice:example.org"); p == nil || p.DisplayName != "Alice" || p.AvatarURL != "mxc://example.org/a" {
		t.Errorf("alice's profile: %+v", p)
	}
	if p, _ := h.Profile(ctx, "@bob:example.org"); p == nil || p.DisplayName != "bob" {
		t.Errorf("bob's profile (a bare localpart, default name): %+v", p)
	}
	for token, want := range map[string][2]string{"alice-token": {"@alice:example.org", "DEVICE"}, "bob-phone": {"@bob:example.org", "PHONE"}} {
		r, err := h.UserByAccessToken(ctx, token)
		if err != nil || r.UserID != want[0] || r.DeviceID != want[1] {
			t.Errorf("token %s: %+v, %v; want %v", token, r, err, want)
		}
	}

	st, err := h.RoomState(ctx, "!lobby:example.org", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ typ, key, field, want string }{
		{"m.room.member", "@alice:example.org", "membership", "join"},
		{"m.room.member", "@alice:example.org", "displayname", "Alice"},
		{"m.room.member", "@bob:example.org", "membership", "join"},
		{"m.room.join_rules", "", "join_rule", "public"},
		{"m.room.name", "", "name", "Lobby"},
		{"m.room.topic", "", "topic", "Say hi"},
		{"m.room.create", "", "creator", "@alice:example.org"},
	} {
		ev := st.Get(c.typ, c.key)
		if ev == nil || ev.Content[c.field] != c.want {
			t.Errorf("lobby %s[%q].%s: got %v, want %q", c.typ, c.key, c.field, ev, c.want)
		}
	}
	if ev := st.Get("org.example.rules", ""); ev == nil || ev.Sender != "@alice:example.org" || ev.Content["max"] != float64(3) {
		t.Errorf("custom state: %+v", ev)
	}
	if ra, err := h.LookupRoomAlias(ctx, "#lobby:example.org"); err != nil || ra.RoomID != "!lobby:example.org" {
		t.Errorf("alias: %+v, %v", ra, err)
	}
	priv, _ := h.RoomState(ctx, "!private:example.org", nil)
	if m := priv.Get("m.room.member", "@bob:example.org"); m == nil || m.Content["membership"] != "invite" || m.Sender != "@alice:example.org" {
		t.Errorf("bob in the private room: %+v", m)
	}
	if m := priv.Get("m.room.member", "@mallory:example.org"); m == nil || m.Content["membership"] != "ban" {
		t.Errorf("mallory in the private room: %+v", m)
	}
	if pl := priv.Get("m.room.power_levels", ""); pl == nil || pl.Content["users"].(map[string]any)["@bob:example.org"] != float64(50) {
		t.Errorf("power levels: %+v", pl)
	}

	if ad, _ := h.GlobalAccountData(ctx, "@alice:example.org", "m.direct"); ad == nil || ad["@bob:example.org"] == nil {
		t.Errorf("account data: %v", ad)
	}
	tps, err := h.ThreepidsForUser(ctx, "@alice:example.org")
	if err != nil || len(tps) != 1 || tps[0].Address != "alice@example.org" || tps[0].ValidatedAt == 0 {
		t.Errorf("threepids: %+v, %v", tps, err)
	}
	// A seeded room works like any other afterwards.
	if _, err := h.SendEvent(ctx, &engine.Event{Type: "m.room.message", RoomID: "!lobby:example.org", Sender: "@bob:example.org",
		Content: map[string]any{"body": "hi"}}); err != nil {
		t.Errorf("bob cannot send into the seeded lobby: %v", err)
	}
}

func TestSeedRefuses(t *testing.T) {
	cases := []struct{ name, fixture, want string }{
		{"unknown key", `{"user": []}`, `unknown field "user"`},
		{"unknown user key", `{"users": [{"id": "a", "admn": true}]}`, `unknown field "admn"`},
		{"bad user ID", `{"users": [{"id": "@nocolon"}]}`, "must look like @localpart:server"},
		{"user twice", `{"users": [{"id": "a"}, {"id": "@A:example.org"}]}`, "users[2]"},
		{"token twice", `{"users": [{"id": "a", "token": "t"}, {"id": "b", "token": "t"}]}`, `access token "t" is already another device's`},
		{"bad membership", `{"rooms": [{"id": "!r:example.org", "members": {"@a:example.org": "joined"}}]}`, `membership "joined" is not join`},
		{"no creator", `{"rooms": [{"id": "!r:example.org"}]}`, "a room needs a creator or members"},
		{"bad room ID", `{"rooms": [{"id": "room", "creator": "@a:example.org"}]}`, "must look like !name:server"},
		{"members not a list", `{"rooms": [{"id": "!r:example.org", "members": "@a:example.org"}]}`, "an array of user IDs or an object"},
		{"account data of nobody", `{"account_data": {"@ghost:example.org": {"t": {}}}}`, "not found"},
		{"threepid of nobody", `{"threepids": [{"user_id": "@ghost:example.org", "medium": "email", "address": "g@example.org"}]}`, "not found"},
		{"threepid of a medium Synapse has not", `{"users": [{"id": "a"}], "threepids": [{"user_id": "a", "medium": "fax", "address": "1"}]}`, `medium "fax" (want email or msisdn)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New("example.org")
			f, err := ParseFixture([]byte(tc.fixture))
			if err == nil {
				err = h.Seed(f)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
