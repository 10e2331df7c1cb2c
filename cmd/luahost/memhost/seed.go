package memhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/luahost/luahost/engine"
)

// A Fixture is a starting state for the homeserver: users, rooms with
// members and state, account data and third-party identifiers. `luahost
// call --fixture FILE` reads one from JSON, and `luahost test`'s t.seed
// takes the same shape as a Lua table:
//
//	{
//	  "users": [{"id": "@alice:example.org", "admin": true, "displayname": "Alice",
//	             "token": "alice-token"}],
//	  "rooms": [{"id": "!room:example.org", "creator": "@alice:example.org",
//	             "members": ["@alice:example.org", "@bob:example.org"],
//	             "state": [{"type": "m.room.topic", "content": {"topic": "Hi"}}]}],
//	  "account_data": {"@alice:example.org": {"m.direct": {}}},
//	  "threepids": [{"user_id": "@alice:example.org", "medium": "email", "address": "alice@example.org"}]
//	}
type Fixture struct {
	Users []FixtureUser `json:"users"`
	Rooms []FixtureRoom `json:"rooms"`
	// AccountData is user ID → type → content (global account data).
	AccountData map[string]map[string]map[string]any `json:"account_data"`
	Threepids   []FixtureThreepid                    `json:"threepids"`
}

// FixtureUser is a user to create.
type FixtureUser struct {
	// ID is "@alice:example.org" or a bare localpart.
	ID           string `json:"id"`
	Admin        bool   `json:"admin"`
	DisplayName  string `json:"displayname"`
	AvatarURL    string `json:"avatar_url"`
	ShadowBanned bool   `json:"shadow_banned"`
	// Token, when set, is an access token of a device "DEVICE".
	Token   string          `json:"token"`
	Devices []FixtureDevice `json:"devices"`
}

// FixtureDevice is one of a user's devices.
type FixtureDevice struct {
	ID          string `json:"device_id"`
	DisplayName string `json:"display_name"`
	Token       string `json:"token"` // optional access token for it
}

// FixtureRoom is a room to create.
type FixtureRoom struct {
	// ID is the room ID ("!room:example.org"); a random one when empty.
	ID string `json:"id"`
	// Creator defaults to the first member.
	Creator string `json:"creator"`
	// Members is an array of user IDs (all joined), or an object of user
	// ID → membership ("join", "invite", "leave", "ban", "knock").
	Members FixtureMembers `json:"members"`
	// Public rooms have join rule "public"; others "invite".
	Public bool   `json:"public"`
	Alias  string `json:"alias"` // "#name:server"
	Name   string `json:"name"`
	Topic  string `json:"topic"`
	// PowerLevels is merged over the default power levels content
	// (creator 100, state_default 50, ...).
	PowerLevels map[string]any `json:"power_levels"`
	// State events to add last; state_key defaults to "", sender to the
	// creator.
	State []FixtureEvent `json:"state"`
}

// FixtureEvent is a state event of a FixtureRoom.
type FixtureEvent struct {
	Type     string         `json:"type"`
	StateKey string         `json:"state_key"`
	Sender   string         `json:"sender"`
	Content  map[string]any `json:"content"`
}

// FixtureMembers is user ID → membership, in the order given.
type FixtureMembers struct {
	IDs         []string
	Memberships map[string]string
}

// UnmarshalJSON takes ["@a:x", ...] (all joined) or {"@a:x": "invite", ...}.
func (m *FixtureMembers) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	m.Memberships = map[string]string{}
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil
	case len(b) > 0 && b[0] == '[':
		var ids []string
		if err := json.Unmarshal(b, &ids); err != nil {
			return fmt.Errorf("members: an array of user IDs expected: %w", err)
		}
		for _, id := range ids {
			m.IDs = append(m.IDs, id)
			m.Memberships[id] = "join"
		}
		return nil
	case len(b) > 0 && b[0] == '{':
		if err := json.Unmarshal(b, &m.Memberships); err != nil {
			return fmt.Errorf("members: an object of user ID to membership expected: %w", err)
		}
		for id := range m.Memberships {
			m.IDs = append(m.IDs, id)
		}
		sort.Strings(m.IDs) // JSON objects have no order of their own
		return nil
	}
	return fmt.Errorf("members: an array of user IDs or an object of user ID to membership expected, got %s", b)
}

// FixtureThreepid is a third-party identifier to bind to a user.
type FixtureThreepid struct {
	UserID      string `json:"user_id"`
	Medium      string `json:"medium"` // "email" or "msisdn"
	Address     string `json:"address"`
	ValidatedAt int64  `json:"validated_at,omitempty"` // ms; default now
	AddedAt     int64  `json:"added_at,omitempty"`     // ms; default now
}

// ParseFixture decodes a fixture from JSON. Unknown keys are errors, so a
// misspelt field does not silently seed nothing.
func ParseFixture(data []byte) (*Fixture, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var f Fixture
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	return &f, nil
}

// Seed adds a fixture's users, rooms, account data and threepids. It
// checks everything it can first and reports every problem; it may have
// added part of the fixture when it fails.
func (h *Host) Seed(f *Fixture) error {
	var errs []error
	for i, u := range f.Users {
		if err := h.seedUser(u); err != nil {
			errs = append(errs, fmt.Errorf("users[%d] %s: %w", i+1, u.ID, err))
		}
	}
	for i, r := range f.Rooms {
		if _, err := h.SeedRoom(r); err != nil {
			errs = append(errs, fmt.Errorf("rooms[%d] %s: %w", i+1, r.ID, err))
		}
	}
	users := make([]string, 0, len(f.AccountData))
	for u := range f.AccountData {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		for typ, content := range f.AccountData[u] {
			if err := h.PutGlobalAccountData(context.Background(), u, typ, content); err != nil {
				errs = append(errs, fmt.Errorf("account_data: %w", err))
			}
		}
	}
	for i, tp := range f.Threepids {
		if err := h.seedThreepid(tp); err != nil {
			errs = append(errs, fmt.Errorf("threepids[%d]: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

func (h *Host) qualify(id string) string {
	if !strings.HasPrefix(id, "@") {
		return "@" + id + ":" + h.serverName
	}
	return id
}

func (h *Host) seedUser(fu FixtureUser) error {
	id := h.qualify(fu.ID)
	if err := validUserID(id); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, taken := h.usersFolded[strings.ToLower(id)]; taken {
		return fmt.Errorf("%w: %s", ErrUserInUse, id)
	}
	name := fu.DisplayName
	if name == "" {
		name, _, _ = splitID(id)
	}
	u := &user{id: id, displayName: name, avatarURL: fu.AvatarURL, admin: fu.Admin,
		shadowBanned: fu.ShadowBanned, creationTS: nowMS() / 1000, devices: map[string]string{}}
	devices := fu.Devices
	if fu.Token != "" {
		devices = append([]FixtureDevice{{ID: "DEVICE", Token: fu.Token}}, devices...)
	}
	for _, d := range devices {
		if d.ID == "" {
			return fmt.Errorf("%w: a device needs a device_id", ErrInvalid)
		}
		if _, ok := u.devices[d.ID]; !ok {
			u.devices[d.ID] = d.DisplayName
		}
		if d.Token != "" {
			if _, taken := h.tokens[d.Token]; taken {
				return fmt.Errorf("%w: access token %q is already another device's", ErrInvalid, d.Token)
			}
		}
	}
	for _, d := range devices {
		if d.Token != "" {
			h.tokens[d.Token] = session{userID: id, deviceID: d.ID}
		}
	}
	h.users[id] = u
	h.usersFolded[strings.ToLower(id)] = id
	return nil
}

// SeedRoom creates a room as a fixture describes it, without the checks
// a client's requests go through (who may invite, join rules, ...), and
// returns its ID.
func (h *Host) SeedRoom(fr FixtureRoom) (string, error) {
	creator := fr.Creator
	if creator == "" && len(fr.Members.IDs) > 0 {
		creator = fr.Members.IDs[0]
		for _, id := range fr.Members.IDs {
			if fr.Members.Memberships[id] == "join" {
				creator = id
				break
			}
		}
	}
	if creator == "" {
		return "", fmt.Errorf("%w: a room needs a creator or members", ErrInvalid)
	}
	creator = h.qualify(creator)
	if err := validUserID(creator); err != nil {
		return "", fmt.Errorf("creator: %w", err)
	}
	for id, m := range fr.Members.Memberships {
		if err := validUserID(id); err != nil {
			return "", fmt.Errorf("members: %w", err)
		}
		switch m {
		case "join", "invite", "leave", "ban", "knock":
		default:
			return "", fmt.Errorf("%w: members: %s: membership %q is not join, invite, leave, ban or knock", ErrInvalid, id, m)
		}
	}
	for i, ev := range fr.State {
		if ev.Type == "" {
			return "", fmt.Errorf("%w: state[%d] has no type", ErrInvalid, i+1)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	roomID := fr.ID
	if roomID == "" {
		for roomID == "" || h.rooms[roomID] != nil {
			roomID = "!" + randomUpper(18) + ":" + h.serverName
		}
	} else if _, _, ok := splitID(roomID); !ok || roomID[0] != '!' {
		return "", fmt.Errorf("%w: room ID %q must look like !name:server", ErrInvalid, roomID)
	} else if h.rooms[roomID] != nil {
		return "", fmt.Errorf("%w: room %s exists already", ErrInvalid, roomID)
	}
	if fr.Alias != "" {
		if _, _, ok := splitID(fr.Alias); !ok || fr.Alias[0] != '#' {
			return "", fmt.Errorf("%w: alias %q must look like #name:server", ErrInvalid, fr.Alias)
		}
		if _, taken := h.aliases[fr.Alias]; taken {
			return "", fmt.Errorf("%w: %s", ErrAliasInUse, fr.Alias)
		}
	}
	// With h set, every event takes its stream position (/sync sees them).
	r := &room{id: roomID, creator: creator, state: engine.StateMap{}, h: h}
	r.append(stateEvent(evCreate, "", creator, map[string]any{"room_version": defaultRoomVersion, "creator": creator}))
	r.append(stateEvent(evMember, creator, creator, h.memberContent(creator, "join")))
	pl := map[string]any{
		"users": map[string]any{creator: 100}, "users_default": 0, "events_default": 0, "state_default": 50,
		"ban": 50, "kick": 50, "redact": 50, "invite": 0,
	}
	for k, v := range fr.PowerLevels {
		pl[k] = v
	}
	r.append(stateEvent(evPowerLevels, "", creator, pl))
	rule := "invite"
	if fr.Public {
		rule = "public"
	}
	r.append(stateEvent(evJoinRules, "", creator, map[string]any{"join_rule": rule}))
	r.append(stateEvent(evHistoryVisibility, "", creator, map[string]any{"history_visibility": "shared"}))
	if fr.Alias != "" {
		r.append(stateEvent(evCanonicalAlias, "", creator, map[string]any{"alias": fr.Alias}))
		h.aliases[fr.Alias] = roomID
	}
	if fr.Name != "" {
		r.append(stateEvent(evName, "", creator, map[string]any{"name": fr.Name}))
	}
	if fr.Topic != "" {
		r.append(stateEvent(evTopic, "", creator, map[string]any{"topic": fr.Topic}))
	}
	for _, id := range fr.Members.IDs {
		m := fr.Members.Memberships[id]
		if id == creator && m == "join" {
			continue
		}
		sender := id
		if m == "invite" || m == "ban" {
			sender = creator
		}
		r.append(stateEvent(evMember, id, sender, h.memberContent(id, m)))
	}
	for _, ev := range fr.State {
		sender := ev.Sender
		if sender == "" {
			sender = creator
		}
		content := cloneMap(ev.Content)
		if content == nil {
			content = map[string]any{}
		}
		r.append(stateEvent(ev.Type, ev.StateKey, sender, content))
	}
	h.rooms[roomID] = r
	return roomID, nil
}

// memberContent is a membership event's content, with the user's profile
// for a join. h.mu held.
func (h *Host) memberContent(userID, membership string) map[string]any {
	c := map[string]any{"membership": membership}
	if u := h.users[userID]; u != nil && membership == "join" {
		c["displayname"] = u.displayName
		if u.avatarURL != "" {
			c["avatar_url"] = u.avatarURL
		}
	}
	return c
}

// seedThreepid binds a fixture's threepid, with its times if given.
func (h *Host) seedThreepid(ft FixtureThreepid) error {
	id := h.qualify(ft.UserID)
	if ft.Medium != "email" && ft.Medium != "msisdn" {
		return fmt.Errorf("%w: medium %q (want email or msisdn)", ErrInvalid, ft.Medium)
	}
	if ft.Address == "" {
		return fmt.Errorf("%w: a threepid needs an address", ErrInvalid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[id]
	if u == nil {
		return fmt.Errorf("threepid of %s: %w", id, engine.ErrNotFound)
	}
	tp := engine.Threepid{Medium: ft.Medium, Address: ft.Address, ValidatedAt: ft.ValidatedAt, AddedAt: ft.AddedAt}
	if tp.AddedAt == 0 {
		tp.AddedAt = nowMS()
	}
	if tp.ValidatedAt == 0 {
		tp.ValidatedAt = tp.AddedAt
	}
	u.addThreepid(tp)
	return nil
}
