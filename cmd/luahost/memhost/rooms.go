package memhost

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/luahost/luahost/engine"
)

const (
	evCreate            = "m.room.create"
	evMember            = "m.room.member"
	evPowerLevels       = "m.room.power_levels"
	evJoinRules         = "m.room.join_rules"
	evHistoryVisibility = "m.room.history_visibility"
	evGuestAccess       = "m.room.guest_access"
	evCanonicalAlias    = "m.room.canonical_alias"
	evName              = "m.room.name"
	evTopic             = "m.room.topic"

	defaultRoomVersion = "10"
)

// room holds a room's current state and its timeline. Stored events are
// never mutated once appended, and never handed out: callers get clones.
type room struct {
	id       string
	creator  string
	state    engine.StateMap
	timeline []stored
	// h gives appended events their stream positions; nil while a room
	// is being built, before it is committed (see commitRoom).
	h         *Host
	published bool              // listed in the room directory
	deleted   bool              // shut down by an admin: kept only for /sync's leave section
	txns      map[string]string // device + "\x00" + transaction ID → event ID
}

// stored is a timeline entry: the event, its stream position, and the
// device and transaction ID a client sent it with.
type stored struct {
	ev            *engine.Event
	pos           int64
	device, txnID string
}

func stateEvent(typ, stateKey, sender string, content map[string]any) *engine.Event {
	return &engine.Event{Type: typ, StateKey: &stateKey, Sender: sender, Content: content}
}

// append stamps ev (which the room now owns) and records it.
func (r *room) append(ev *engine.Event) *engine.Event {
	r.stamp(ev)
	r.record(ev)
	return ev
}

// stamp gives ev an event ID, the room ID and a timestamp.
func (r *room) stamp(ev *engine.Event) {
	ev.EventID = "$" + randomToken(32)
	ev.RoomID = r.id
	ev.OriginServerTS = nowMS()
	if ev.Content == nil {
		ev.Content = map[string]any{}
	}
}

// record puts a stamped ev on the timeline and, for a state event, makes
// it current state. Like Synapse it notes the state it replaces in
// unsigned.replaces_state and unsigned.prev_content.
func (r *room) record(ev *engine.Event) {
	if ev.IsState() {
		if prev := r.state.Get(ev.Type, *ev.StateKey); prev != nil {
			if ev.Unsigned == nil {
				ev.Unsigned = map[string]any{}
			}
			ev.Unsigned["replaces_state"] = prev.EventID
			ev.Unsigned["prev_content"] = cloneMap(prev.Content)
		}
		r.state.Put(ev)
	}
	var pos int64
	if r.h != nil {
		pos = r.h.advance()
	}
	r.timeline = append(r.timeline, stored{ev: ev, pos: pos})
}

// cloneState deep-copies a state map.
func cloneState(s engine.StateMap) engine.StateMap {
	out := engine.StateMap{}
	for _, byKey := range s {
		for _, ev := range byKey {
			out.Put(cloneEvent(ev))
		}
	}
	return out
}

func (r *room) membership(userID string) string {
	if ev := r.state.Get(evMember, userID); ev != nil {
		m, _ := ev.Content["membership"].(string)
		return m
	}
	return ""
}

func (r *room) joinRule() string {
	if ev := r.state.Get(evJoinRules, ""); ev != nil {
		j, _ := ev.Content["join_rule"].(string)
		return j
	}
	return ""
}

// userLevel is userID's power level: the power levels event's users entry,
// else users_default; with no power levels event, 100 for the creator.
func (r *room) userLevel(userID string) int64 {
	pl := r.state.Get(evPowerLevels, "")
	if pl == nil {
		if userID == r.creator {
			return 100
		}
		return 0
	}
	if v, ok := toInt(field(pl.Content["users"], userID)); ok {
		return v
	}
	v, _ := toInt(pl.Content["users_default"])
	return v
}

// actionLevel is the level an action (ban, kick, invite, redact) needs.
func (r *room) actionLevel(action string) int64 {
	def := int64(50)
	if action == "invite" {
		def = 0
	}
	if pl := r.state.Get(evPowerLevels, ""); pl != nil {
		if v, ok := toInt(pl.Content[action]); ok {
			return v
		}
	}
	return def
}

// eventLevel is the level sending an event of typ needs.
func (r *room) eventLevel(typ string, isState bool) int64 {
	pl := r.state.Get(evPowerLevels, "")
	if pl == nil {
		return 0
	}
	if v, ok := toInt(field(pl.Content["events"], typ)); ok {
		return v
	}
	key, def := "events_default", int64(0)
	if isState {
		key, def = "state_default", 50
	}
	if v, ok := toInt(pl.Content[key]); ok {
		return v
	}
	return def
}

// field reads m[key] from any map with string keys.
func field(m any, key string) any {
	if mm, ok := m.(map[string]any); ok {
		return mm[key]
	}
	rv := reflect.ValueOf(m)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil
	}
	v := rv.MapIndex(reflect.ValueOf(key).Convert(rv.Type().Key()))
	if !v.IsValid() {
		return nil
	}
	return v.Interface()
}

// toInt reads a power level given as any Go number, json.Number or (as
// old room versions allow) a decimal string.
func toInt(v any) (int64, bool) {
	switch t := v.(type) {
	case nil:
		return 0, false
	case json.Number:
		n, err := t.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		return n, err == nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if rv.Uint() > math.MaxInt64 {
			return 0, false
		}
		return int64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

// lookupRoom returns the room or an error wrapping engine.ErrNotFound.
// The caller holds h.mu.
func (h *Host) lookupRoom(roomID string) (*room, error) {
	r := h.rooms[roomID]
	if r == nil || r.deleted {
		return nil, fmt.Errorf("room %s: %w", roomID, engine.ErrNotFound)
	}
	return r, nil
}

// RoomState implements engine.RoomStateGetter. The result is a deep copy.
func (h *Host) RoomState(ctx context.Context, roomID string, filter []engine.StateFilter) (engine.StateMap, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return nil, err
	}
	out := engine.StateMap{}
	if len(filter) == 0 {
		for _, byKey := range r.state {
			for _, ev := range byKey {
				out.Put(cloneEvent(ev))
			}
		}
		return out, nil
	}
	for _, f := range filter {
		if f.AnyKey {
			for _, ev := range r.state[f.Type] {
				out.Put(cloneEvent(ev))
			}
		} else if ev := r.state.Get(f.Type, f.StateKey); ev != nil {
			out.Put(cloneEvent(ev))
		}
	}
	return out, nil
}

// Events returns a copy of the room's timeline, oldest first; nil for an
// unknown room. For tests.
func (h *Host) Events(roomID string) []*engine.Event {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.rooms[roomID]
	if r == nil {
		return nil
	}
	out := make([]*engine.Event, len(r.timeline))
	for i, st := range r.timeline {
		out[i] = cloneEvent(st.ev)
	}
	return out
}

// SendEvent implements engine.EventSender. The sender must be joined and
// have the power level the event type needs; a state key starting with
// @ must be the sender's own. Membership events go through the same rules
// as UpdateMembership. The stored event is returned (a copy).
func (h *Host) SendEvent(ctx context.Context, ev *engine.Event) (*engine.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ev == nil {
		return nil, fmt.Errorf("send event: %w", refuse(ErrInvalid, "nil event"))
	}
	if ev.Type == "" {
		return nil, fmt.Errorf("send event: %w", refuse(ErrInvalid, "event has no type"))
	}
	if err := validUserID(ev.Sender); err != nil {
		return nil, fmt.Errorf("send event: sender: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.lookupRoom(ev.RoomID)
	if err != nil {
		return nil, fmt.Errorf("send event: %w", err)
	}
	if ev.Type == evMember && ev.IsState() {
		m, _ := ev.Content["membership"].(string)
		stored, err := h.updateMembership(r, ev.Sender, *ev.StateKey, m, ev.Content)
		if err != nil {
			return nil, fmt.Errorf("send event: %w", err)
		}
		return cloneEvent(stored), nil
	}
	if ev.Type == evCreate {
		return nil, fmt.Errorf("send event: %w", refuse(ErrForbidden, "room %s already has a create event", r.id))
	}
	if m := r.membership(ev.Sender); m != "join" {
		return nil, fmt.Errorf("send event: %w", refuse(ErrForbidden, "%s is not joined to room %s", ev.Sender, r.id))
	}
	if ev.IsState() && strings.HasPrefix(*ev.StateKey, "@") && *ev.StateKey != ev.Sender {
		return nil, fmt.Errorf("send event: %w", refuse(ErrForbidden, "state key %s belongs to another user", *ev.StateKey))
	}
	if have, need := r.userLevel(ev.Sender), r.eventLevel(ev.Type, ev.IsState()); have < need {
		return nil, fmt.Errorf("send event: %w", refuse(ErrForbidden, "%s has power level %d, %s needs %d", ev.Sender, have, ev.Type, need))
	}
	stored := cloneEvent(ev)
	stored.EventID, stored.OriginServerTS = "", 0
	return cloneEvent(r.append(stored)), nil
}

// UpdateMembership implements engine.MembershipUpdater for join, invite, leave
// (a kick or unban when sender ≠ target) and ban. Joining needs public
// join rules or an invite; the other changes need the sender joined with
// the power level the room asks for.
func (h *Host) UpdateMembership(ctx context.Context, sender, target, roomID, membership string, content map[string]any) (*engine.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return nil, fmt.Errorf("update membership: %w", err)
	}
	ev, err := h.updateMembership(r, sender, target, membership, content)
	if err != nil {
		return nil, fmt.Errorf("update membership: %w", err)
	}
	return cloneEvent(ev), nil
}

// updateMembership checks and applies a membership change; h.mu is held.
// It returns the stored event.
func (h *Host) updateMembership(r *room, sender, target, membership string, content map[string]any) (*engine.Event, error) {
	if err := validUserID(sender); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if err := validUserID(target); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	senderM, targetM := r.membership(sender), r.membership(target)
	needJoined := func() error {
		if senderM != "join" {
			return refuse(ErrForbidden, "%s is not joined to room %s", sender, r.id)
		}
		return nil
	}
	needLevel := func(action string, overTarget bool) error {
		have, need := r.userLevel(sender), r.actionLevel(action)
		if have < need {
			return refuse(ErrForbidden, "%s has power level %d, %s needs %d", sender, have, action, need)
		}
		if overTarget && have <= r.userLevel(target) && sender != target {
			return refuse(ErrForbidden, "%s's power level is not above %s's", sender, target)
		}
		return nil
	}
	switch membership {
	case "join":
		switch {
		case sender != target:
			return nil, refuse(ErrForbidden, "%s cannot join on behalf of %s", sender, target)
		case targetM == "ban":
			return nil, refuse(ErrForbidden, "%s is banned from room %s", target, r.id)
		case targetM == "join", targetM == "invite", r.joinRule() == "public":
		default:
			return nil, refuse(ErrForbidden, "room %s is invite-only and %s has no invite", r.id, target)
		}
	case "invite":
		if err := needJoined(); err != nil {
			return nil, err
		}
		if err := needLevel("invite", false); err != nil {
			return nil, err
		}
		switch targetM {
		case "join":
			return nil, refuse(ErrForbidden, "%s is already in room %s", target, r.id)
		case "ban":
			return nil, refuse(ErrForbidden, "%s is banned from room %s", target, r.id)
		}
		if h.isLocal(target) && h.users[target] == nil {
			return nil, fmt.Errorf("invitee %s: %w", target, engine.ErrNotFound)
		}
	case "leave":
		if sender == target {
			if targetM != "join" && targetM != "invite" && targetM != "knock" {
				return nil, refuse(ErrForbidden, "%s is not in room %s", target, r.id)
			}
			break
		}
		if err := needJoined(); err != nil {
			return nil, err
		}
		switch targetM {
		case "ban": // unban
			if err := needLevel("ban", false); err != nil {
				return nil, err
			}
		case "join", "invite", "knock": // kick, or withdraw an invite
			if err := needLevel("kick", true); err != nil {
				return nil, err
			}
		default:
			return nil, refuse(ErrForbidden, "%s is not in room %s", target, r.id)
		}
	case "ban":
		if err := needJoined(); err != nil {
			return nil, err
		}
		if err := needLevel("ban", true); err != nil {
			return nil, err
		}
	default:
		return nil, refuse(ErrInvalid, "unsupported membership %q (want join, invite, leave or ban)", membership)
	}
	c := cloneMap(content)
	if c == nil {
		c = map[string]any{}
	}
	c["membership"] = membership
	if membership == "join" {
		if u := h.users[target]; u != nil {
			if _, ok := c["displayname"]; !ok && u.displayName != "" {
				c["displayname"] = u.displayName
			}
			if _, ok := c["avatar_url"]; !ok && u.avatarURL != "" {
				c["avatar_url"] = u.avatarURL
			}
		}
	}
	return r.append(stateEvent(evMember, target, sender, c)), nil
}

// LookupRoomAlias implements engine.AliasResolver.
func (h *Host) LookupRoomAlias(ctx context.Context, alias string) (*engine.RoomAlias, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	roomID, ok := h.aliases[alias]
	if !ok {
		return nil, engine.ErrNotFound
	}
	return &engine.RoomAlias{RoomID: roomID, Servers: []string{h.serverName}}, nil
}
