package csapi

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
)

// ---- events as clients see them ----

// clientEvent formats an event for the requester: unsigned gets age, the
// transaction ID for the device that sent it, and the fields of
// add_field_to_unsigned_callback (never overwriting what is there).
func (s *Server) clientEvent(c *call, ev *engine.Event, te *memhost.TimelineEvent, withRoomID bool) (map[string]any, error) {
	out := map[string]any{
		"type":             ev.Type,
		"content":          ev.ContentMap(),
		"sender":           ev.Sender,
		"event_id":         ev.EventID,
		"origin_server_ts": ev.OriginServerTS,
	}
	if out["content"] == nil {
		out["content"] = map[string]any{}
	}
	if withRoomID {
		out["room_id"] = ev.RoomID
	}
	if ev.StateKey != nil {
		out["state_key"] = *ev.StateKey
	}
	unsigned := map[string]any{}
	for k, v := range ev.Unsigned {
		unsigned[k] = v
	}
	unsigned["age"] = max(time.Now().UnixMilli()-ev.OriginServerTS, 0)
	if te != nil && te.TxnID != "" && c.who != nil && te.Device == c.deviceKey() {
		unsigned["transaction_id"] = te.TxnID
	}
	if s.eng.Has(engine.CallbackAddFieldsToUnsigned) {
		extra, err := s.eng.AddFieldsToUnsigned(c.ctx(), ev)
		if err != nil {
			return nil, moduleErr("add_field_to_unsigned_callback", err)
		}
		for k, v := range extra {
			if _, ok := unsigned[k]; !ok {
				unsigned[k] = v
			}
		}
	}
	out["unsigned"] = unsigned
	return out, nil
}

// clientEvents formats plain events, then timeline events.
func (s *Server) clientEvents(c *call, evs []*engine.Event, tes []memhost.TimelineEvent, withRoomID bool) ([]any, error) {
	out := make([]any, 0, len(evs)+len(tes))
	for _, ev := range evs {
		m, err := s.clientEvent(c, ev, nil, withRoomID)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for i := range tes {
		m, err := s.clientEvent(c, tes[i].Event, &tes[i], withRoomID)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func strippedEvents(evs []*engine.Event) []any {
	out := make([]any, len(evs))
	for i, ev := range evs {
		out[i] = map[string]any{"type": ev.Type, "state_key": *ev.StateKey, "sender": ev.Sender, "content": ev.ContentMap()}
	}
	return out
}

// ---- /sync ----

// maxSyncTimeout bounds a long-poll.
const maxSyncTimeout = 5 * time.Minute

func (s *Server) sync(c *call) (any, error) {
	q := c.r.URL.Query()
	ctx := c.ctx()
	var since int64
	if tok := q.Get("since"); tok != "" {
		n, err := parseToken(tok)
		if err != nil {
			return nil, err
		}
		since = n
	}
	var timeout time.Duration
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.Atoi(t)
		if err != nil || ms < 0 {
			return nil, badRequest("M_INVALID_PARAM", "Query parameter \"timeout\" must be an integer")
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxSyncTimeout)
	}
	fullState := q.Get("full_state") == "true"
	limit, err := s.timelineLimit(c, q.Get("filter"))
	if err != nil {
		return nil, err
	}
	if p := q.Get("set_presence"); p != "offline" {
		if p == "" {
			p = "online"
		}
		if p != "online" && p != "unavailable" {
			return nil, badRequest("M_INVALID_PARAM", "Query parameter \"set_presence\" must be one of [online, offline, unavailable]")
		}
		if err := s.markPresence(ctx, c.who.UserID, p); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		snap, err := s.host.Sync(ctx, c.who.UserID, since, limit, fullState)
		if err != nil {
			return nil, err
		}
		resp, empty, err := s.syncResponse(c, snap)
		if err != nil {
			return nil, err
		}
		wait := time.Until(deadline)
		if !empty || since == 0 || fullState || wait <= 0 {
			return resp, nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-snap.Wake:
			timer.Stop()
		case <-timer.C:
		case <-s.opts.Done:
			timer.Stop()
			return resp, nil
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
	}
}

// markPresence is what a syncing client does to its user's presence.
func (s *Server) markPresence(ctx context.Context, userID, state string) error {
	cur, err := s.host.PresenceOf(ctx, userID)
	if err != nil {
		return err
	}
	if cur.State == state {
		return nil
	}
	return s.host.SetPresence(ctx, []engine.PresenceState{{UserID: userID, State: state,
		LastActiveTS: time.Now().UnixMilli(), StatusMsg: cur.StatusMsg, CurrentlyActive: state == "online"}})
}

// timelineLimit reads room.timeline.limit from a filter given inline or
// by ID; 10 without one, as in Synapse.
func (s *Server) timelineLimit(c *call, filter string) (int, error) {
	if filter == "" {
		return 10, nil
	}
	var f map[string]any
	if strings.HasPrefix(filter, "{") {
		if err := json.Unmarshal([]byte(filter), &f); err != nil {
			return 0, badRequest("M_NOT_JSON", "Invalid filter JSON")
		}
	} else {
		s.mu.Lock()
		f = s.filters[c.who.UserID+"\x00"+filter]
		s.mu.Unlock()
		if f == nil {
			return 0, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "No such filter"}
		}
	}
	room, _ := f["room"].(map[string]any)
	timeline, _ := room["timeline"].(map[string]any)
	if l, ok := timeline["limit"].(float64); ok && l > 0 {
		return int(l), nil
	}
	return 10, nil
}

// syncResponse builds the body, routing presence through the presence
// router; empty reports that nothing in it is for this user.
func (s *Server) syncResponse(c *call, snap *memhost.SyncSnapshot) (map[string]any, bool, error) {
	resp := map[string]any{"next_batch": token(snap.Pos)}
	rooms := map[string]any{}
	if len(snap.Join) > 0 {
		join := map[string]any{}
		for _, rs := range snap.Join {
			r, err := s.roomBody(c, rs)
			if err != nil {
				return nil, false, err
			}
			r["account_data"] = map[string]any{"events": accountDataEvents(rs.AccountData)}
			r["ephemeral"] = map[string]any{"events": []any{}}
			join[rs.RoomID] = r
		}
		rooms["join"] = join
	}
	if len(snap.Invite) > 0 {
		invite := map[string]any{}
		for _, ir := range snap.Invite {
			invite[ir.RoomID] = map[string]any{"invite_state": map[string]any{"events": strippedEvents(ir.InviteState)}}
		}
		rooms["invite"] = invite
	}
	if len(snap.Leave) > 0 {
		leave := map[string]any{}
		for _, rs := range snap.Leave {
			r, err := s.roomBody(c, rs)
			if err != nil {
				return nil, false, err
			}
			leave[rs.RoomID] = r
		}
		rooms["leave"] = leave
	}
	if len(rooms) > 0 {
		resp["rooms"] = rooms
	}
	if len(snap.AccountData) > 0 {
		resp["account_data"] = map[string]any{"events": accountDataEvents(snap.AccountData)}
	}
	presence, err := s.visiblePresence(c.ctx(), c.who.UserID, snap)
	if err != nil {
		return nil, false, err
	}
	if len(presence) > 0 {
		resp["presence"] = map[string]any{"events": presence}
	}
	empty := len(rooms) == 0 && len(snap.AccountData) == 0 && len(presence) == 0
	return resp, empty, nil
}

func (s *Server) roomBody(c *call, rs memhost.RoomSync) (map[string]any, error) {
	timeline, err := s.clientEvents(c, nil, rs.Timeline, false)
	if err != nil {
		return nil, err
	}
	state, err := s.clientEvents(c, rs.State, nil, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"timeline": map[string]any{"events": timeline, "limited": rs.Limited, "prev_batch": token(rs.PrevBatch)},
		"state":    map[string]any{"events": state},
	}, nil
}

func accountDataEvents(ads []memhost.AccountData) []any {
	out := make([]any, len(ads))
	for i, ad := range ads {
		out[i] = map[string]any{"type": ad.Type, "content": ad.Content}
	}
	return out
}

// visiblePresence picks the presence updates userID sees, as Synapse's
// PresenceEventSource does: their own, those of users they share a room
// with, and those the presence router adds with get_interested_users; a
// router answering ALL makes get_users_for_states decide instead.
func (s *Server) visiblePresence(ctx context.Context, userID string, snap *memhost.SyncSnapshot) ([]any, error) {
	if len(snap.Presence) == 0 {
		return nil, nil
	}
	var states []engine.PresenceState
	routed := s.eng.Has(engine.CallbackGetInterestedUsers)
	interested := engine.InterestedUsers{}
	if routed {
		var err error
		interested, err = s.eng.GetInterestedUsers(ctx, userID)
		if err != nil {
			return nil, moduleErr("get_interested_users", err)
		}
	}
	if interested.All {
		all := make([]engine.PresenceState, len(snap.Presence))
		for i, p := range snap.Presence {
			all[i] = p.State
		}
		byUser, err := s.eng.GetUsersForStates(ctx, all)
		if err != nil {
			return nil, moduleErr("get_users_for_states", err)
		}
		for _, m := range byUser[userID] {
			b, _ := json.Marshal(m)
			var st engine.PresenceState
			if json.Unmarshal(b, &st) == nil && st.UserID != "" {
				states = append(states, st)
			}
		}
	} else {
		want := map[string]bool{userID: true}
		for u := range snap.RoomMates {
			want[u] = true
		}
		for _, u := range interested.Users {
			want[u] = true
		}
		for _, p := range snap.Presence {
			if want[p.State.UserID] {
				states = append(states, p.State)
			}
		}
	}
	out := make([]any, 0, len(states))
	for _, st := range states {
		out = append(out, map[string]any{"type": "m.presence", "sender": st.UserID, "content": presenceContent(st)})
	}
	return out, nil
}

func presenceContent(st engine.PresenceState) map[string]any {
	content := map[string]any{"presence": st.State}
	if st.LastActiveTS > 0 {
		content["last_active_ago"] = max(time.Now().UnixMilli()-st.LastActiveTS, 0)
	}
	if st.State == "online" {
		content["currently_active"] = st.CurrentlyActive
	}
	if st.StatusMsg != "" {
		content["status_msg"] = st.StatusMsg
	}
	return content
}

func (s *Server) putFilter(c *call) (any, error) {
	if c.vars["user"] != c.who.UserID {
		return nil, forbidden("Cannot create filters for other users")
	}
	f, err := c.object(false)
	if err != nil {
		return nil, err
	}
	id := s.newID()
	s.mu.Lock()
	s.filters[c.who.UserID+"\x00"+id] = f
	s.mu.Unlock()
	return map[string]any{"filter_id": id}, nil
}

func (s *Server) getFilter(c *call) (any, error) {
	if c.vars["user"] != c.who.UserID {
		return nil, forbidden("Cannot get filters for other users")
	}
	s.mu.Lock()
	f := s.filters[c.who.UserID+"\x00"+c.vars["id"]]
	s.mu.Unlock()
	if f == nil {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "No such filter"}
	}
	return f, nil
}

// ---- presence ----

func (s *Server) putPresence(c *call) (any, error) {
	if c.vars["user"] != c.who.UserID {
		return nil, forbidden("Can only set your own presence state")
	}
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	state, ok := body["presence"].(string)
	if !ok {
		return nil, badRequest("M_UNKNOWN", "Unable to parse state")
	}
	msg := ""
	if v, ok := body["status_msg"]; ok {
		if msg, ok = v.(string); !ok {
			return nil, badRequest("M_UNKNOWN", "status_msg must be a string.")
		}
	}
	for k := range body {
		if k != "presence" && k != "status_msg" {
			return nil, badRequest("M_UNKNOWN", "Unable to parse state")
		}
	}
	switch state {
	case "online", "unavailable", "offline":
	default:
		return nil, badRequest("M_INVALID_PARAM", "Invalid presence state")
	}
	err = s.host.SetPresence(c.ctx(), []engine.PresenceState{{UserID: c.who.UserID, State: state,
		LastActiveTS: time.Now().UnixMilli(), StatusMsg: msg, CurrentlyActive: state == "online"}})
	if err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func (s *Server) getPresence(c *call) (any, error) {
	ctx := c.ctx()
	target := c.vars["user"]
	if target != c.who.UserID {
		visible := false
		snap, err := s.host.Sync(ctx, c.who.UserID, 0, 1, false)
		if err != nil {
			return nil, err
		}
		seen, err := s.visiblePresence(ctx, c.who.UserID, snap)
		if err != nil {
			return nil, err
		}
		for _, p := range seen {
			if p.(map[string]any)["sender"] == target {
				visible = true
			}
		}
		if !visible && !snap.RoomMates[target] {
			return nil, forbidden("You are not allowed to see their presence.")
		}
	}
	st, err := s.host.PresenceOf(ctx, target)
	if err != nil {
		return nil, err
	}
	return presenceContent(st), nil
}
