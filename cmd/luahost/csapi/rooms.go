package csapi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
)

// ---- the event pipeline ----

// eventAllowed asks check_event_allowed about ev with the state before it
// and returns the replacement to use (nil: keep ev). A replacement may
// change the content and the (local) sender, not the room, type or state
// key: Synapse refuses that as an invalid event (500).
func (s *Server) eventAllowed(ctx context.Context, ev *engine.Event, before engine.StateMap) (*engine.Event, error) {
	if !s.eng.Has(engine.CallbackCheckEventAllowed) {
		return nil, nil
	}
	d, err := s.eng.CheckEventAllowed(ctx, ev, before)
	if err != nil {
		return nil, moduleErr("check_event_allowed", err)
	}
	if e := d.Err(); e != nil {
		return nil, e
	}
	rep := d.Replacement
	if rep == nil {
		return nil, nil
	}
	switch {
	case rep.RoomID != ev.RoomID:
		return nil, errors.New("third party rules module created an invalid event: cannot change field room_id")
	case rep.Type != ev.Type:
		return nil, errors.New("third party rules module created an invalid event: cannot change field type")
	case (rep.StateKey == nil) != (ev.StateKey == nil) || rep.StateKey != nil && *rep.StateKey != *ev.StateKey:
		return nil, errors.New("third party rules module created an invalid event: cannot change field state_key")
	case !strings.HasSuffix(rep.Sender, ":"+s.host.ServerName()):
		return nil, fmt.Errorf("third party rules module created an invalid event: invalid sender %s", rep.Sender)
	}
	out := &engine.Event{Type: ev.Type, RoomID: ev.RoomID, StateKey: ev.StateKey, Sender: rep.Sender, Content: rep.ContentMap()}
	if out.Content == nil {
		out.Content = map[string]any{}
	}
	return out, nil
}

// newEvent tells on_new_event about a stored event, with the state after
// it; Synapse runs it in the background too.
func (s *Server) newEvent(ev *engine.Event) {
	if !s.eng.Has(engine.CallbackOnNewEvent) {
		return
	}
	state, err := s.host.RoomState(context.Background(), ev.RoomID, nil)
	if err != nil {
		state = engine.StateMap{}
	}
	if !s.eng.FireOnNewEvent(ev, state) {
		s.log.Warn("on_new_event dropped: the notification queue is full", "event_id", ev.EventID)
	}
}

func (s *Server) roomState(ctx context.Context, roomID string) (engine.StateMap, error) {
	st, err := s.host.RoomState(ctx, roomID, nil)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Unknown room " + roomID}
	}
	return st, err
}

// sendNonMember is Synapse's create_and_send_nonmember_event for a
// client: shadow-ban, rate limit, transaction ID, membership, then
// check_event_allowed, check_event_for_spam, the room's rules, storage
// and on_new_event. It returns the event ID.
func (s *Server) sendNonMember(c *call, ev *engine.Event, txnID string) (string, error) {
	ctx := c.ctx()
	if c.who.ShadowBanned {
		// Synapse pretends: a made-up event ID, nothing sent.
		return "$" + randomHex(16), nil
	}
	if err := s.ratelimit(ctx, c.who.UserID, "rc_message", c.who.UserID, false); err != nil {
		return "", err
	}
	if txnID != "" {
		prev, err := s.host.EventByTxn(ctx, ev.RoomID, c.deviceKey(), txnID)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return "", err
		}
		if prev != nil {
			return prev.EventID, nil
		}
	}
	m, err := s.host.Membership(ctx, ev.RoomID, ev.Sender)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return "", err
	}
	if m != "join" {
		return "", forbidden(fmt.Sprintf("User %s not in room %s", ev.Sender, ev.RoomID))
	}
	before, err := s.roomState(ctx, ev.RoomID)
	if err != nil {
		return "", err
	}
	if rep, err := s.eventAllowed(ctx, ev, before); err != nil {
		return "", err
	} else if rep != nil {
		ev = rep
	}
	d, err := s.eng.CheckEventForSpam(ctx, ev)
	if err != nil {
		return "", moduleErr("check_event_for_spam", err)
	}
	if !d.Allowed() {
		return "", refusal(d, "This message has been rejected as probable spam")
	}
	stored, err := s.host.SendClientEvent(ctx, ev, c.deviceKey(), txnID)
	if err != nil {
		return "", err
	}
	_ = s.ratelimit(ctx, c.who.UserID, "rc_message", c.who.UserID, true)
	s.newEvent(stored)
	return stored.EventID, nil
}

func (s *Server) send(c *call) (any, error) {
	content, err := c.object(false)
	if err != nil {
		return nil, err
	}
	ev := &engine.Event{Type: c.vars["type"], RoomID: c.vars["room"], Sender: c.who.UserID, Content: content}
	id, err := s.sendNonMember(c, ev, c.vars["txn"])
	if err != nil {
		return nil, err
	}
	return map[string]any{"event_id": id}, nil
}

// putState is PUT /rooms/{id}/state/{type}/{key}: user_may_send_state_event
// (admins skip it), then membership events go the membership way and the
// rest the way of messages.
func (s *Server) putState(c *call) (any, error) {
	content, err := c.object(false)
	if err != nil {
		return nil, err
	}
	ctx := c.ctx()
	roomID, typ, key := c.vars["room"], c.vars["type"], c.vars["key"]
	if !s.isAdmin(ctx, c.who.UserID) {
		d, err := s.eng.UserMaySendStateEvent(ctx, c.who.UserID, roomID, typ, key, content)
		if err != nil {
			return nil, moduleErr("user_may_send_state_event", err)
		}
		if !d.Allowed() {
			return nil, refusal(d, "You are not permitted to send the state event")
		}
	}
	if typ == "m.room.member" {
		membership, _ := content["membership"].(string)
		ev, err := s.updateMembership(c, roomID, key, membership, content, membership)
		if err != nil {
			return nil, err
		}
		return map[string]any{"event_id": ev.EventID}, nil
	}
	k := key
	ev := &engine.Event{Type: typ, RoomID: roomID, Sender: c.who.UserID, StateKey: &k, Content: content}
	id, err := s.sendNonMember(c, ev, "")
	if err != nil {
		return nil, err
	}
	return map[string]any{"event_id": id}, nil
}

// ---- membership ----

// updateMembership is Synapse's update_membership for a local client:
// the invite rate limits, user_may_invite and user_may_join_room (admins
// skip both), then check_event_allowed, the room's rules, storage and
// on_new_event. action is what the client asked (kick is a leave of
// another user).
func (s *Server) updateMembership(c *call, roomID, target, membership string, content map[string]any, action string) (*engine.Event, error) {
	ctx := c.ctx()
	sender := c.who.UserID
	switch membership {
	case "join", "invite", "leave", "ban":
	default:
		return nil, badRequest("M_BAD_JSON", fmt.Sprintf("Unknown membership %q", membership))
	}
	targetM, err := s.host.Membership(ctx, roomID, target)
	if errors.Is(err, engine.ErrNotFound) {
		if action == "join" {
			return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "No known servers"}
		}
		return nil, forbidden(fmt.Sprintf("User %s not in room %s", sender, roomID))
	}
	if err != nil {
		return nil, err
	}
	admin := s.isAdmin(ctx, sender)
	switch membership {
	case "invite":
		if err := s.ratelimitInvite(ctx, c.who.UserID, roomID, target); err != nil {
			return nil, err
		}
		if c.who.ShadowBanned {
			return &engine.Event{EventID: "$" + randomHex(16)}, nil
		}
		if !admin {
			d, err := s.eng.UserMayInvite(ctx, sender, target, roomID)
			if err != nil {
				return nil, moduleErr("user_may_invite", err)
			}
			if !d.Allowed() {
				return nil, refusal(d, "Invites have been disabled on this server")
			}
		}
	case "join":
		if !admin {
			d, err := s.eng.UserMayJoinRoom(ctx, target, roomID, targetM == "invite")
			if err != nil {
				return nil, moduleErr("user_may_join_room", err)
			}
			if !d.Allowed() {
				return nil, refusal(d, "Not allowed to join this room")
			}
		}
	case "leave":
		if action == "kick" && targetM != "join" && targetM != "invite" && targetM != "knock" {
			return nil, forbidden("The target user is not in the room")
		}
	}
	c2 := map[string]any{}
	for k, v := range content {
		c2[k] = v
	}
	c2["membership"] = membership
	if membership == "join" {
		if p, err := s.host.Profile(ctx, target); err == nil {
			if _, ok := c2["displayname"]; !ok && p.DisplayName != "" {
				c2["displayname"] = p.DisplayName
			}
			if _, ok := c2["avatar_url"]; !ok && p.AvatarURL != "" {
				c2["avatar_url"] = p.AvatarURL
			}
		}
	}
	key := target
	ev := &engine.Event{Type: "m.room.member", RoomID: roomID, Sender: sender, StateKey: &key, Content: c2}
	before, err := s.roomState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if rep, err := s.eventAllowed(ctx, ev, before); err != nil {
		return nil, err
	} else if rep != nil {
		ev = rep
	}
	stored, err := s.host.UpdateMembership(ctx, ev.Sender, target, roomID, membership, ev.Content)
	if err != nil {
		return nil, err
	}
	s.newEvent(stored)
	return stored, nil
}

func (s *Server) resolveRoom(ctx context.Context, idOrAlias string) (string, error) {
	if !strings.HasPrefix(idOrAlias, "#") {
		if !strings.HasPrefix(idOrAlias, "!") {
			return "", badRequest("M_UNKNOWN", idOrAlias+" was not legal room ID or room alias")
		}
		return idOrAlias, nil
	}
	a, err := s.host.LookupRoomAlias(ctx, idOrAlias)
	if errors.Is(err, engine.ErrNotFound) {
		return "", &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Room alias " + idOrAlias + " not found"}
	}
	if err != nil {
		return "", err
	}
	return a.RoomID, nil
}

func (s *Server) join(c *call) (any, error) {
	body, err := c.object(true)
	if err != nil {
		return nil, err
	}
	roomID, err := s.resolveRoom(c.ctx(), c.vars["room"])
	if err != nil {
		return nil, err
	}
	content := map[string]any{}
	if r, ok := body["reason"].(string); ok {
		content["reason"] = r
	}
	if _, err := s.updateMembership(c, roomID, c.who.UserID, "join", content, "join"); err != nil {
		return nil, err
	}
	return map[string]any{"room_id": roomID}, nil
}

// targeted is invite, kick, ban and unban: a user_id in the body.
func (s *Server) targeted(c *call, membership, action string) (any, error) {
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	target, ok := body["user_id"].(string)
	if !ok {
		return nil, badRequest("M_MISSING_PARAM", "Missing params: user_id")
	}
	if !strings.HasPrefix(target, "@") || !strings.Contains(target, ":") {
		return nil, badRequest("M_INVALID_PARAM", "Invalid user_id: "+target)
	}
	content := map[string]any{}
	if r, ok := body["reason"].(string); ok {
		content["reason"] = r
	}
	if _, err := s.updateMembership(c, c.vars["room"], target, membership, content, action); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func (s *Server) invite(c *call) (any, error) { return s.targeted(c, "invite", "invite") }
func (s *Server) kick(c *call) (any, error)   { return s.targeted(c, "leave", "kick") }
func (s *Server) ban(c *call) (any, error)    { return s.targeted(c, "ban", "ban") }
func (s *Server) unban(c *call) (any, error)  { return s.targeted(c, "leave", "unban") }

func (s *Server) leave(c *call) (any, error) {
	body, err := c.object(true)
	if err != nil {
		return nil, err
	}
	content := map[string]any{}
	if r, ok := body["reason"].(string); ok {
		content["reason"] = r
	}
	if _, err := s.updateMembership(c, c.vars["room"], c.who.UserID, "leave", content, "leave"); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// ---- createRoom ----

func (s *Server) createRoom(c *call) (any, error) {
	config, err := c.object(true)
	if err != nil {
		return nil, err
	}
	ctx := c.ctx()
	userID := c.who.UserID
	admin := s.isAdmin(ctx, userID)
	config, err = s.eng.OnCreateRoom(ctx, c.who, config, admin)
	if err != nil {
		return nil, moduleErr("on_create_room", err)
	}
	if config == nil {
		config = map[string]any{}
	}
	var invites []string
	if list, ok := config["invite"].([]any); ok {
		for _, v := range list {
			id, _ := v.(string)
			if !strings.HasPrefix(id, "@") || !strings.Contains(id, ":") {
				return nil, badRequest("M_UNKNOWN", fmt.Sprintf("Invalid user_id: %v", v))
			}
			invites = append(invites, id)
		}
	}
	if v, ok := config["room_version"]; ok {
		ver, ok := v.(string)
		if !ok {
			return nil, badRequest("M_BAD_JSON", "room_version must be a string")
		}
		if n, err := strconv.Atoi(ver); err != nil || n < 1 || n > 11 {
			return nil, badRequest("M_UNSUPPORTED_ROOM_VERSION", "Your homeserver does not support this room version")
		}
	}
	alias := ""
	if v, ok := config["room_alias_name"]; ok {
		name, _ := v.(string)
		if strings.IndexFunc(name, unicode.IsSpace) >= 0 {
			return nil, badRequest("M_UNKNOWN", "Invalid characters in room alias")
		}
		if strings.Contains(name, ":") {
			return nil, badRequest("M_UNKNOWN", "':' is not permitted in the room alias name. Please note this expects a local part — 'wombat', not '#wombat:example.com'.")
		}
		alias = "#" + name + ":" + s.host.ServerName()
		if _, err := s.host.LookupRoomAlias(ctx, alias); err == nil {
			return nil, badRequest("M_ROOM_IN_USE", "Room alias already taken")
		}
	}
	if len(invites) > 0 && c.who.ShadowBanned {
		// Synapse lets the request through without the invites.
		delete(config, "invite")
		delete(config, "invite_3pid")
		invites = nil
	}
	if pl, ok := config["power_level_content_override"].(map[string]any); ok {
		if users, ok := pl["users"].(map[string]any); ok {
			if _, ok := users[userID]; !ok {
				return nil, badRequest("M_UNKNOWN", "Not a valid power_level_content_override: 'users' did not contain "+userID)
			}
		}
	}
	visibility := "private"
	if v, ok := config["visibility"].(string); ok {
		visibility = v
	}
	if !admin {
		d, err := s.eng.UserMayCreateRoom(ctx, userID, copyMap(config))
		if err != nil {
			return nil, moduleErr("user_may_create_room", err)
		}
		if !d.Allowed() {
			return nil, refusal(d, "You are not permitted to create rooms")
		}
	}
	check := func(ev *engine.Event, before engine.StateMap) (*engine.Event, error) {
		if ev.Type == "m.room.create" {
			// The room ID exists from here: what Synapse asks between
			// choosing it and sending the first event.
			ok, err := s.eng.CheckVisibilityCanBeModified(ctx, ev.RoomID, engine.StateMap{}, visibility)
			if err != nil {
				return nil, moduleErr("check_visibility_can_be_modified", err)
			}
			if !ok {
				return nil, &engine.SynapseError{Code: 403, Errcode: "M_UNKNOWN", Msg: "Room visibility value not allowed."}
			}
			if alias != "" {
				d, err := s.eng.UserMayCreateRoomAlias(ctx, userID, alias)
				if err != nil {
					return nil, moduleErr("user_may_create_room_alias", err)
				}
				if !d.Allowed() {
					return nil, refusal(d, "This user is not permitted to create this alias")
				}
			}
		}
		if ev.Type == "m.room.member" && ev.ContentMap()["membership"] == "invite" && !admin {
			d, err := s.eng.UserMayInvite(ctx, userID, *ev.StateKey, ev.RoomID)
			if err != nil {
				return nil, moduleErr("user_may_invite", err)
			}
			if !d.Allowed() {
				// Synapse sends the invites once the room exists: the
				// room stays, the request fails.
				return nil, fmt.Errorf("%w: %w", memhost.ErrCommitSoFar, refusal(d, "Invites have been disabled on this server"))
			}
		}
		return s.eventAllowed(ctx, ev, before)
	}
	roomID, gotAlias, err := s.host.CreateRoomChecked(ctx, userID, config, check)
	if roomID == "" {
		return nil, err
	}
	failed := err
	if visibility == "public" {
		if err := s.host.SetPublished(ctx, roomID, true); err != nil {
			return nil, err
		}
	}
	if s.eng.Has(engine.CallbackOnNewEvent) {
		for _, ev := range s.host.Events(roomID) {
			s.newEvent(ev)
		}
	}
	if failed != nil {
		return nil, failed
	}
	resp := map[string]any{"room_id": roomID}
	if gotAlias != "" {
		resp["room_alias"] = gotAlias
	}
	return resp, nil
}

// copyMap is a shallow copy: user_may_create_room gets a copy of the
// request, as in Synapse.
func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---- reading rooms ----

// requireJoined refuses a user who is not in the room.
func (s *Server) requireJoined(ctx context.Context, roomID, userID string) error {
	m, err := s.host.Membership(ctx, roomID, userID)
	if errors.Is(err, engine.ErrNotFound) || err == nil && m != "join" {
		return forbidden(fmt.Sprintf("User %s not in room %s", userID, roomID))
	}
	return err
}

func (s *Server) getFullState(c *call) (any, error) {
	ctx := c.ctx()
	roomID := c.vars["room"]
	if err := s.requireJoined(ctx, roomID, c.who.UserID); err != nil {
		return nil, err
	}
	state, err := s.roomState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return s.clientEvents(c, sortedState(state), nil, true)
}

func (s *Server) getState(c *call) (any, error) {
	ctx := c.ctx()
	roomID := c.vars["room"]
	if err := s.requireJoined(ctx, roomID, c.who.UserID); err != nil {
		return nil, err
	}
	state, err := s.host.RoomState(ctx, roomID, []engine.StateFilter{{Type: c.vars["type"], StateKey: c.vars["key"]}})
	if err != nil {
		return nil, err
	}
	ev := state.Get(c.vars["type"], c.vars["key"])
	if ev == nil {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Event not found."}
	}
	if c.r.URL.Query().Get("format") == "event" {
		return s.clientEvent(c, ev, nil, true)
	}
	return ev.ContentMap(), nil
}

func (s *Server) getEvent(c *call) (any, error) {
	ctx := c.ctx()
	roomID := c.vars["room"]
	if err := s.requireJoined(ctx, roomID, c.who.UserID); err != nil {
		return nil, err
	}
	ev, err := s.host.Event(ctx, roomID, c.vars["event"])
	if errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Event not found."}
	}
	if err != nil {
		return nil, err
	}
	return s.clientEvent(c, ev, nil, true)
}

func (s *Server) members(c *call) (any, error) {
	ctx := c.ctx()
	roomID := c.vars["room"]
	if err := s.requireJoined(ctx, roomID, c.who.UserID); err != nil {
		return nil, err
	}
	state, err := s.host.RoomState(ctx, roomID, []engine.StateFilter{{Type: "m.room.member", AnyKey: true}})
	if err != nil {
		return nil, err
	}
	evs, err := s.clientEvents(c, sortedState(state), nil, true)
	if err != nil {
		return nil, err
	}
	return map[string]any{"chunk": evs}, nil
}

func (s *Server) joinedMembers(c *call) (any, error) {
	ctx := c.ctx()
	roomID := c.vars["room"]
	if err := s.requireJoined(ctx, roomID, c.who.UserID); err != nil {
		return nil, err
	}
	state, err := s.host.RoomState(ctx, roomID, []engine.StateFilter{{Type: "m.room.member", AnyKey: true}})
	if err != nil {
		return nil, err
	}
	joined := map[string]any{}
	for uid, ev := range state["m.room.member"] {
		content := ev.ContentMap()
		if content["membership"] != "join" {
			continue
		}
		joined[uid] = map[string]any{"display_name": content["displayname"], "avatar_url": content["avatar_url"]}
	}
	return map[string]any{"joined": joined}, nil
}

func (s *Server) joinedRooms(c *call) (any, error) {
	rooms, err := s.host.JoinedRooms(c.ctx(), c.who.UserID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"joined_rooms": rooms}, nil
}

func (s *Server) resolveAlias(c *call) (any, error) {
	a, err := s.host.LookupRoomAlias(c.ctx(), c.vars["alias"])
	if errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Room alias " + c.vars["alias"] + " not found"}
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"room_id": a.RoomID, "servers": a.Servers}, nil
}

// parseToken reads a stream token ("s<position>").
func parseToken(tok string) (int64, error) {
	if len(tok) < 2 || tok[0] != 's' {
		return 0, badRequest("M_INVALID_PARAM", "Invalid token")
	}
	n, err := strconv.ParseInt(tok[1:], 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("M_INVALID_PARAM", "Invalid token")
	}
	return n, nil
}

func token(pos int64) string { return "s" + strconv.FormatInt(pos, 10) }

func (s *Server) messages(c *call) (any, error) {
	q := c.r.URL.Query()
	from := int64(-1)
	if f := q.Get("from"); f != "" {
		n, err := parseToken(f)
		if err != nil {
			return nil, err
		}
		from = n
	}
	dir := q.Get("dir")
	if dir == "" {
		dir = "b"
	}
	if dir != "b" && dir != "f" {
		return nil, badRequest("M_INVALID_PARAM", "Unknown value for dir: "+dir)
	}
	limit := 10
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return nil, badRequest("M_INVALID_PARAM", "Query parameter \"limit\" must be an integer")
		}
		limit = min(n, 1000)
	}
	if from < 0 {
		if dir == "b" {
			from = s.host.Position()
		} else {
			from = 0
		}
	}
	events, next, err := s.host.Messages(c.ctx(), c.vars["room"], c.who.UserID, from, dir == "b", limit)
	if err != nil {
		return nil, err
	}
	chunk, err := s.clientEvents(c, nil, events, true)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"chunk": chunk, "start": token(from)}
	if next >= 0 {
		resp["end"] = token(next)
	}
	return resp, nil
}

// ---- directory ----

func (s *Server) getVisibility(c *call) (any, error) {
	pub, err := s.host.Published(c.ctx(), c.vars["room"])
	if errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Unknown room"}
	}
	if err != nil {
		return nil, err
	}
	v := "private"
	if pub {
		v = "public"
	}
	return map[string]any{"visibility": v}, nil
}

// putVisibility is Synapse's edit_published_room_list:
// user_may_publish_room first (for either visibility), then the power
// check, then check_visibility_can_be_modified when publishing.
func (s *Server) putVisibility(c *call) (any, error) {
	body, err := c.object(true)
	if err != nil {
		return nil, err
	}
	ctx := c.ctx()
	roomID := c.vars["room"]
	visibility, _ := body["visibility"].(string)
	if visibility == "" {
		visibility = "public"
	}
	if visibility != "public" && visibility != "private" {
		return nil, badRequest("M_INVALID_PARAM", "Invalid visibility value")
	}
	d, err := s.eng.UserMayPublishRoom(ctx, c.who.UserID, roomID)
	if err != nil {
		return nil, moduleErr("user_may_publish_room", err)
	}
	if !d.Allowed() {
		return nil, refusal(d, "This user is not permitted to publish rooms to the room list")
	}
	state, err := s.host.RoomState(ctx, roomID, nil)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, badRequest("M_UNKNOWN", "Unknown room")
	}
	if err != nil {
		return nil, err
	}
	if !s.canChangeRoomList(state, c.who.UserID) && !s.isAdmin(ctx, c.who.UserID) {
		return nil, forbidden("This server requires you to be a moderator in the room to edit its room list entry")
	}
	if visibility == "public" {
		ok, err := s.eng.CheckVisibilityCanBeModified(ctx, roomID, state, visibility)
		if err != nil {
			return nil, moduleErr("check_visibility_can_be_modified", err)
		}
		if !ok {
			return nil, &engine.SynapseError{Code: 403, Errcode: "M_UNKNOWN", Msg: "Not allowed to publish room"}
		}
	}
	if err := s.host.SetPublished(ctx, roomID, visibility == "public"); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// canChangeRoomList: joined, with the power to send m.room.canonical_alias
// (Synapse's check_can_change_room_list).
func (s *Server) canChangeRoomList(state engine.StateMap, userID string) bool {
	m := state.Get("m.room.member", userID)
	if m == nil || m.ContentMap()["membership"] != "join" {
		return false
	}
	pl := state.Get("m.room.power_levels", "")
	if pl == nil {
		return true
	}
	content := pl.ContentMap()
	level := num(content["users_default"], 0)
	if users, ok := content["users"].(map[string]any); ok {
		if v, ok := users[userID]; ok {
			level = num(v, level)
		}
	}
	need := num(content["state_default"], 50)
	if events, ok := content["events"].(map[string]any); ok {
		if v, ok := events["m.room.canonical_alias"]; ok {
			need = num(v, need)
		}
	}
	return level >= need
}

func num(v any, def float64) float64 {
	switch t := v.(type) {
	case float64:
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case string:
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return f
		}
	}
	return def
}

func (s *Server) publicRooms(c *call) (any, error) {
	ctx := c.ctx()
	ids, err := s.host.PublishedRooms(ctx)
	if err != nil {
		return nil, err
	}
	chunk := []any{}
	for _, id := range ids {
		state, err := s.host.RoomState(ctx, id, nil)
		if err != nil {
			continue
		}
		entry := map[string]any{"room_id": id, "world_readable": false, "guest_can_join": false}
		joined := 0
		for _, ev := range state["m.room.member"] {
			if ev.ContentMap()["membership"] == "join" {
				joined++
			}
		}
		entry["num_joined_members"] = joined
		if ev := state.Get("m.room.name", ""); ev != nil {
			entry["name"] = ev.ContentMap()["name"]
		}
		if ev := state.Get("m.room.topic", ""); ev != nil {
			entry["topic"] = ev.ContentMap()["topic"]
		}
		if ev := state.Get("m.room.canonical_alias", ""); ev != nil {
			entry["canonical_alias"] = ev.ContentMap()["alias"]
		}
		if ev := state.Get("m.room.join_rules", ""); ev != nil {
			entry["join_rule"] = ev.ContentMap()["join_rule"]
		}
		chunk = append(chunk, entry)
	}
	return map[string]any{"chunk": chunk, "total_room_count_estimate": len(chunk)}, nil
}

func sortedState(state engine.StateMap) []*engine.Event {
	var out []*engine.Event
	for _, byKey := range state {
		for _, ev := range byKey {
			out = append(out, ev)
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
