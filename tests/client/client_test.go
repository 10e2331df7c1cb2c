package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// The modules the server runs, written into a temporary folder.
var modules = map[string]string{
	"luahost.yaml": `server_name: example.org
storage: { backend: memory }
modules:
  - module: spam.lua
  - module: rules.lua
  - module: unsigned.lua
  - module: presence.lua
`,
	// Refuses any message that mentions "spam".
	"spam.lua": `
local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      local body = event.content.body
      if type(body) == "string" and body:find("spam", 1, true) then
        return api.Codes.FORBIDDEN
      end
      return api.NOT_SPAM
    end,
  }
end
return M
`,
	// Replaces "heck" with "h*ck" in messages.
	"rules.lua": `
local M = {}
function M.new(config, api)
  api.register_third_party_rules_callbacks{
    check_event_allowed = function(event, state_events)
      local body = event.content.body
      if event.type == "m.room.message" and type(body) == "string" and body:find("heck", 1, true) then
        local copy = event:get_dict()
        copy.content.body = body:gsub("heck", "h*ck")
        return true, copy
      end
      return true
    end,
  }
end
return M
`,
	// Marks every event it sees on its way to a client.
	"unsigned.lua": `
local M = {}
function M.new(config, api)
  api.register_add_extra_fields_to_unsigned_client_event_callbacks{
    add_field_to_unsigned_callback = function(event)
      return { ["org.example.checked_by"] = "unsigned.lua" }
    end,
  }
end
return M
`,
	// Alice sees Carol's presence, though they share no room.
	"presence.lua": `
local M = {}
function M.new(config, api)
  api.register_presence_router_callbacks{
    get_users_for_states = function(states)
      local out = {}
      for _, s in ipairs(states) do
        if s.user_id == "@carol:example.org" then
          out["@alice:example.org"] = out["@alice:example.org"] or {}
          table.insert(out["@alice:example.org"], s)
        end
      end
      return out
    end,
    get_interested_users = function(user_id)
      if user_id == "@alice:example.org" then
        return { "@carol:example.org" }
      end
      return api.array()
    end,
  }
end
return M
`,
}

var servingRe = regexp.MustCompile(`luahost: serving \d+ module\(s\) on (http://\S+)`)

// startServer builds luahost from this checkout and runs `luahost serve`
// on a free loopback port until the test ends; it returns the base URL.
func startServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "luahost")
	build := exec.Command("go", "build", "-C", "../..", "-o", bin, "./cmd/luahost")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building luahost: %v\n%s", err, out)
	}
	for name, text := range modules {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "serve", "-c", filepath.Join(dir, "luahost.yaml"), "--listen", "127.0.0.1:0", "--no-watch")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", stderr.String())
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case url := <-found:
		return url
	case <-time.After(60 * time.Second):
		t.Fatalf("luahost serve did not start; log:\n%s", stderr.String())
	}
	return ""
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// register makes a user with dummy auth and returns a client logged in
// with a password login (a second device: both paths get exercised).
func register(t *testing.T, ctx context.Context, base, name string) *mautrix.Client {
	t.Helper()
	anon, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := anon.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: name + "-password"})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if reg.UserID != id.NewUserID(name, "example.org") || reg.AccessToken == "" {
		t.Fatalf("register %s: got %+v", name, reg)
	}
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name},
		Password:         name + "-password",
		StoreCredentials: true,
	})
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	who, err := cli.Whoami(ctx)
	if err != nil || who.UserID != reg.UserID {
		t.Fatalf("whoami %s: %+v, %v", name, who, err)
	}
	return cli
}

func TestClientDrivesCallbacks(t *testing.T) {
	base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	alice := register(t, ctx, base, "alice")
	bob := register(t, ctx, base, "bob")
	carol := register(t, ctx, base, "carol")

	// A wrong password is refused as Synapse refuses it.
	anon, _ := mautrix.NewClient(base, "", "")
	_, err := anon.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "wrong"})
	if !errors.Is(err, mautrix.MForbidden) {
		t.Fatalf("login with a wrong password: %v; want M_FORBIDDEN", err)
	}

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Team", Preset: "private_chat"})
	if err != nil {
		t.Fatalf("createRoom: %v", err)
	}
	if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("invite: %v", err)
	}

	// Bob sees the invite in his sync, then joins.
	first, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline)
	if err != nil {
		t.Fatalf("bob's first sync: %v", err)
	}
	if _, ok := first.Rooms.Invite[room.RoomID]; !ok {
		t.Fatalf("bob's sync has no invite to %s: %+v", room.RoomID, first.Rooms)
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), nil); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	afterJoin, err := bob.SyncRequest(ctx, 0, first.NextBatch, "", false, event.PresenceOffline)
	if err != nil {
		t.Fatal(err)
	}

	// A long-poll waits for Alice's next message.
	type result struct {
		resp *mautrix.RespSync
		err  error
	}
	polled := make(chan result, 1)
	go func() {
		resp, err := bob.SyncRequest(ctx, 30000, afterJoin.NextBatch, "", false, event.PresenceOffline)
		polled <- result{resp, err}
	}()
	time.Sleep(200 * time.Millisecond) // let the poll start waiting: it must be woken, not answered at once
	if _, err := alice.SendText(ctx, room.RoomID, "hello bob"); err != nil {
		t.Fatalf("send: %v", err)
	}
	var poll result
	select {
	case poll = <-polled:
	case <-time.After(20 * time.Second):
		t.Fatal("bob's long-poll did not return after alice's message")
	}
	if poll.err != nil {
		t.Fatal(poll.err)
	}
	if bodies := messageBodies(poll.resp, room.RoomID); len(bodies) != 1 || bodies[0] != "hello bob" {
		t.Fatalf("bob's long-poll got messages %q; want [hello bob]", bodies)
	}

	// The spam checker refuses a message: the client sees 403 M_FORBIDDEN.
	_, err = alice.SendText(ctx, room.RoomID, "buy spam now")
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusForbidden ||
		!errors.Is(err, mautrix.MForbidden) {
		t.Fatalf("sending spam: %v; want 403 M_FORBIDDEN", err)
	}

	// The third-party rules replace a word; Bob's sync carries the
	// replacement, with the unsigned field of unsigned.lua.
	if _, err := alice.SendText(ctx, room.RoomID, "what the heck"); err != nil {
		t.Fatalf("send: %v", err)
	}
	next, err := bob.SyncRequest(ctx, 5000, poll.resp.NextBatch, "", false, event.PresenceOffline)
	if err != nil {
		t.Fatal(err)
	}
	if bodies := messageBodies(next, room.RoomID); len(bodies) != 1 || bodies[0] != "what the h*ck" {
		t.Fatalf("bob's sync got messages %q; want only [what the h*ck] (the spam must not arrive)", bodies)
	}

	// unsigned.lua's field is on the events: mautrix drops unknown unsigned
	// fields, so read the same sync as JSON through the client.
	raw, err := bob.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodGet,
		URL: bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, map[string]string{"since": poll.resp.NextBatch, "set_presence": "offline"})})
	if err != nil {
		t.Fatal(err)
	}
	var rawSync struct {
		Rooms struct {
			Join map[string]struct {
				Timeline struct {
					Events []struct {
						Content  map[string]any `json:"content"`
						Unsigned map[string]any `json:"unsigned"`
					} `json:"events"`
				} `json:"timeline"`
			} `json:"join"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(raw, &rawSync); err != nil {
		t.Fatal(err)
	}
	evs := rawSync.Rooms.Join[room.RoomID.String()].Timeline.Events
	if len(evs) != 1 || evs[0].Content["body"] != "what the h*ck" || evs[0].Unsigned["org.example.checked_by"] != "unsigned.lua" {
		t.Fatalf("raw sync events %+v; want the replaced message with unsigned.org.example.checked_by", evs)
	}

	// The presence router: Carol shares no room with Alice, yet her
	// presence reaches Alice, and not Bob.
	aliceStart, err := alice.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline)
	if err != nil {
		t.Fatal(err)
	}
	bobStart, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline)
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "at my desk"}); err != nil {
		t.Fatalf("carol sets presence: %v", err)
	}
	aliceNext, err := alice.SyncRequest(ctx, 5000, aliceStart.NextBatch, "", false, event.PresenceOffline)
	if err != nil {
		t.Fatal(err)
	}
	p := presenceOf(aliceNext, carol.UserID)
	if p == nil || p.Presence != event.PresenceOnline || p.StatusMessage != "at my desk" {
		t.Fatalf("alice's sync presence for carol: %+v; want online, at my desk (events %d)", p, len(aliceNext.Presence.Events))
	}
	bobNext, err := bob.SyncRequest(ctx, 500, bobStart.NextBatch, "", false, event.PresenceOffline)
	if err != nil {
		t.Fatal(err)
	}
	if p := presenceOf(bobNext, carol.UserID); p != nil {
		t.Fatalf("bob got carol's presence %+v; the router sends it only to alice", p)
	}

	// Messages and state read back through the client.
	msgs, err := bob.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs.Chunk) == 0 || body(msgs.Chunk[0]) != "what the h*ck" {
		t.Fatalf("/messages: newest event %+v; want the replaced message", msgs.Chunk[0])
	}
	var name event.RoomNameEventContent
	if err := bob.StateEvent(ctx, room.RoomID, event.StateRoomName, "", &name); err != nil || name.Name != "Team" {
		t.Fatalf("room name %q, %v; want Team", name.Name, err)
	}
	if _, err := alice.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		t.Fatalf("whoami after logout: %v; want M_UNKNOWN_TOKEN", err)
	}
}

func messageBodies(resp *mautrix.RespSync, roomID id.RoomID) []string {
	var out []string
	r := resp.Rooms.Join[roomID]
	if r == nil {
		return nil
	}
	for _, ev := range r.Timeline.Events {
		if ev.Type == event.EventMessage {
			out = append(out, body(ev))
		}
	}
	return out
}

// body is a message's body ("" for anything else).
func body(ev *event.Event) string {
	if ev.Type != event.EventMessage {
		return ""
	}
	if err := ev.Content.ParseRaw(ev.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return ""
	}
	return ev.Content.AsMessage().Body
}

func presenceOf(resp *mautrix.RespSync, userID id.UserID) *event.PresenceEventContent {
	for _, ev := range resp.Presence.Events {
		if ev.Sender != userID {
			continue
		}
		if err := ev.Content.ParseRaw(event.EphemeralEventPresence); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
			continue
		}
		return ev.Content.AsPresence()
	}
	return nil
}
