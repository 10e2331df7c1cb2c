package memhost

import (
	"context"
	"fmt"
	"sort"

	"github.com/luahost/luahost/engine"
)

// What /sync and /messages read: every change a client can be told about
// has a stream position (Host.advance), and a sync reports what changed
// after the position of the previous one.

// TimelineEvent is an event with its stream position and, for the
// device that sent it, the transaction ID it used.
type TimelineEvent struct {
	Event  *engine.Event
	Pos    int64
	Device string // the device key given to SendClientEvent
	TxnID  string
}

// AccountData is one piece of account data.
type AccountData struct {
	Type    string
	Content map[string]any
}

// RoomSync is one room of a sync: the timeline since the previous sync
// (at most the limit asked, Limited when more were left out), the state
// at the start of that timeline when the client needs it, the user's
// account data for the room that changed.
type RoomSync struct {
	RoomID      string
	Timeline    []TimelineEvent
	Limited     bool
	PrevBatch   int64 // position before the first timeline event
	State       []*engine.Event
	AccountData []AccountData
}

// InvitedRoom is a room a user is invited to, with the stripped state a
// client shows for the invite.
type InvitedRoom struct {
	RoomID      string
	InviteState []*engine.Event
}

// PresenceUpdate is one user's presence at a stream position.
type PresenceUpdate struct {
	State engine.PresenceState
	Pos   int64
}

// SyncSnapshot is everything a user's sync may report, read at one
// moment. Wake is closed at the next change anywhere: a long-poll with
// nothing to report waits on it and asks again.
type SyncSnapshot struct {
	Pos         int64
	Wake        <-chan struct{}
	Join, Leave []RoomSync
	Invite      []InvitedRoom
	AccountData []AccountData // global, changed since
	// Presence is every user's presence that changed since (all of it on
	// an initial sync); who may see which is the caller's business.
	Presence []PresenceUpdate
	// RoomMates are the users who share a joined room with the user.
	RoomMates map[string]bool
}

// Empty reports whether the snapshot has nothing for the client.
func (s *SyncSnapshot) Empty() bool {
	return len(s.Join) == 0 && len(s.Leave) == 0 && len(s.Invite) == 0 &&
		len(s.AccountData) == 0 && len(s.Presence) == 0
}

// Sync reads what changed for userID after position since (0: an initial
// sync). timelineLimit bounds each room's timeline; fullState sends every
// joined room with its state, as on an initial sync.
func (h *Host) Sync(ctx context.Context, userID string, since int64, timelineLimit int, fullState bool) (*SyncSnapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if timelineLimit <= 0 {
		timelineLimit = 10
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	snap := &SyncSnapshot{Pos: h.pos, Wake: h.wake, RoomMates: map[string]bool{}}
	if since > h.pos {
		since = h.pos // a token from before a restart: start over
	}
	ids := make([]string, 0, len(h.rooms))
	for id := range h.rooms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := h.rooms[id]
		m, mPos := r.memberAt(userID, h.pos)
		switch m {
		case "join":
			for uid, ev := range r.state[evMember] {
				if ev.Content["membership"] == "join" {
					snap.RoomMates[uid] = true
				}
			}
			wasJoined, _ := r.memberAt(userID, since)
			initial := since == 0 || fullState || wasJoined != "join"
			rs := r.roomSync(since, h.pos, timelineLimit, initial)
			rs.AccountData = h.accountDataSince(accountDataKey{userID, r.id}, since)
			if initial || len(rs.Timeline) > 0 || len(rs.AccountData) > 0 {
				snap.Join = append(snap.Join, rs)
			}
		case "invite":
			if mPos > since {
				snap.Invite = append(snap.Invite, InvitedRoom{RoomID: r.id, InviteState: r.strippedState(userID)})
			}
		case "leave", "ban":
			// Reported once, in the sync after the change; an initial
			// sync leaves them out, as Synapse does without a filter.
			if since > 0 && mPos > since {
				wasJoined, _ := r.memberAt(userID, since)
				rs := r.roomSync(since, mPos, timelineLimit, wasJoined != "join")
				snap.Leave = append(snap.Leave, rs)
			}
		}
	}
	delete(snap.RoomMates, userID)
	snap.AccountData = h.accountDataSince(accountDataKey{userID, ""}, since)
	for _, e := range h.presence {
		if e.pos > since {
			snap.Presence = append(snap.Presence, PresenceUpdate{State: e.state, Pos: e.pos})
		}
	}
	sort.Slice(snap.Presence, func(i, j int) bool { return snap.Presence[i].Pos < snap.Presence[j].Pos })
	return snap, nil
}

// memberAt is userID's membership as of stream position pos, and the
// position of the event that set it.
func (r *room) memberAt(userID string, pos int64) (string, int64) {
	for i := len(r.timeline) - 1; i >= 0; i-- {
		st := r.timeline[i]
		if st.pos > pos || st.ev.Type != evMember || st.ev.StateKey == nil || *st.ev.StateKey != userID {
			continue
		}
		m, _ := st.ev.Content["membership"].(string)
		return m, st.pos
	}
	return "", 0
}

// roomSync is the timeline of events in (since, upto], at most limit of
// the latest; with initial (the user's first view of the room) the
// timeline is the latest events up to upto and the state at its start
// comes along. A limited timeline brings the state at its start too, so
// the client's view has no gap.
func (r *room) roomSync(since, upto int64, limit int, initial bool) RoomSync {
	rs := RoomSync{RoomID: r.id}
	end := len(r.timeline)
	for end > 0 && r.timeline[end-1].pos > upto {
		end--
	}
	start := end
	for start > 0 && end-start < limit && (initial || r.timeline[start-1].pos > since) {
		start--
	}
	if start > 0 && (initial || r.timeline[start-1].pos > since) {
		rs.Limited = true
	}
	for _, st := range r.timeline[start:end] {
		rs.Timeline = append(rs.Timeline, TimelineEvent{Event: cloneEvent(st.ev), Pos: st.pos, Device: st.device, TxnID: st.txnID})
	}
	if start > 0 {
		rs.PrevBatch = r.timeline[start-1].pos
	}
	if initial || rs.Limited {
		rs.State = r.stateBefore(start)
	}
	return rs
}

// stateBefore is the room's state before timeline entry i, sorted by
// type and state key.
func (r *room) stateBefore(i int) []*engine.Event {
	state := engine.StateMap{}
	for _, st := range r.timeline[:i] {
		if st.ev.IsState() {
			state.Put(st.ev)
		}
	}
	return sortedState(state)
}

func sortedState(state engine.StateMap) []*engine.Event {
	var out []*engine.Event
	for _, byKey := range state {
		for _, ev := range byKey {
			out = append(out, cloneEvent(ev))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return *out[i].StateKey < *out[j].StateKey
	})
	return out
}

// strippedState is what an invitee sees of a room: the state events the
// spec lists, and their own invite, each as type, state key, sender and
// content only.
func (r *room) strippedState(userID string) []*engine.Event {
	var out []*engine.Event
	for _, typ := range []string{evCreate, evJoinRules, evCanonicalAlias, "m.room.avatar", evName, "m.room.encryption", evTopic} {
		if ev := r.state.Get(typ, ""); ev != nil {
			out = append(out, stripped(ev))
		}
	}
	if ev := r.state.Get(evMember, userID); ev != nil {
		out = append(out, stripped(ev))
	}
	return out
}

func stripped(ev *engine.Event) *engine.Event {
	k := *ev.StateKey
	return &engine.Event{Type: ev.Type, StateKey: &k, Sender: ev.Sender, Content: cloneMap(ev.Content)}
}

func (h *Host) accountDataSince(k accountDataKey, since int64) []AccountData {
	var out []AccountData
	for typ, e := range h.accountData[k] {
		if e.pos > since {
			out = append(out, AccountData{Type: typ, Content: cloneMap(e.content)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Messages pages through a room's timeline for userID: from a position,
// backwards (newest first) or forwards, at most limit events. next is the
// token for the following page, -1 when there is none. A user who left
// sees the events up to their leaving; one never joined sees nothing
// (ErrForbidden).
func (h *Host) Messages(ctx context.Context, roomID, userID string, from int64, backwards bool, limit int) (events []TimelineEvent, next int64, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if limit <= 0 {
		limit = 10
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return nil, 0, err
	}
	m, mPos := r.memberAt(userID, h.pos)
	upto := h.pos
	switch m {
	case "join":
	case "leave", "ban":
		if joined := r.everJoined(userID); !joined {
			return nil, 0, refuse(ErrForbidden, "User %s not in room %s, and room previews are disabled", userID, roomID)
		}
		upto = mPos
	default:
		return nil, 0, refuse(ErrForbidden, "User %s not in room %s, and room previews are disabled", userID, roomID)
	}
	if from < 0 || from > upto {
		from = upto
	}
	next = -1
	if backwards {
		for i := len(r.timeline) - 1; i >= 0; i-- {
			st := r.timeline[i]
			if st.pos > from {
				continue
			}
			if len(events) == limit {
				next = events[len(events)-1].Pos - 1
				break
			}
			events = append(events, TimelineEvent{Event: cloneEvent(st.ev), Pos: st.pos, Device: st.device, TxnID: st.txnID})
		}
		return events, next, nil
	}
	for _, st := range r.timeline {
		if st.pos <= from || st.pos > upto {
			continue
		}
		if len(events) == limit {
			next = events[len(events)-1].Pos
			break
		}
		events = append(events, TimelineEvent{Event: cloneEvent(st.ev), Pos: st.pos, Device: st.device, TxnID: st.txnID})
	}
	return events, next, nil
}

func (r *room) everJoined(userID string) bool {
	for _, st := range r.timeline {
		if st.ev.Type == evMember && st.ev.StateKey != nil && *st.ev.StateKey == userID && st.ev.Content["membership"] == "join" {
			return true
		}
	}
	return false
}

// Position is the current stream position.
func (h *Host) Position() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.pos
}

// PresenceOf returns a user's presence, or offline for one never seen.
func (h *Host) PresenceOf(ctx context.Context, userID string) (engine.PresenceState, error) {
	if err := ctx.Err(); err != nil {
		return engine.PresenceState{}, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if e, ok := h.presence[userID]; ok {
		return e.state, nil
	}
	if h.users[userID] == nil && h.isLocal(userID) {
		return engine.PresenceState{}, fmt.Errorf("presence of %s: %w", userID, engine.ErrNotFound)
	}
	return engine.PresenceState{UserID: userID, State: "offline"}, nil
}
