package memhost

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/luahost/luahost/engine"
)

// roomConfig is a checked /createRoom body.
type roomConfig struct {
	preset          string
	public          bool // visibility: public
	alias           string
	name, topic     *string
	invites         []string
	isDirect        bool
	roomVersion     string
	creationContent map[string]any
	plOverride      map[string]any
	initialState    []*engine.Event
}

func configString(config map[string]any, key string) (string, bool, error) {
	v, ok := config[key]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, refuse(ErrInvalid, "createRoom %s must be a string, not %T", key, v)
	}
	return s, true, nil
}

func configMap(config map[string]any, key string) (map[string]any, error) {
	v, ok := config[key]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, refuse(ErrInvalid, "createRoom %s must be an object, not %T", key, v)
	}
	return cloneMap(m), nil
}

// configList returns the list under key; an empty map counts as an empty
// list, since an empty Lua table converts to either.
func configList(config map[string]any, key string) ([]any, error) {
	switch t := config[key].(type) {
	case nil:
		return nil, nil
	case []any:
		return t, nil
	case []string:
		out := make([]any, len(t))
		for i, s := range t {
			out[i] = s
		}
		return out, nil
	case []map[string]any:
		out := make([]any, len(t))
		for i, m := range t {
			out[i] = m
		}
		return out, nil
	case map[string]any:
		if len(t) == 0 {
			return nil, nil
		}
	}
	return nil, refuse(ErrInvalid, "createRoom %s must be a list, not %T", key, config[key])
}

func (h *Host) parseRoomConfig(creator string, config map[string]any) (*roomConfig, error) {
	c := &roomConfig{}
	var err error
	if c.preset, _, err = configString(config, "preset"); err != nil {
		return nil, err
	}
	vis, _, err := configString(config, "visibility")
	if err != nil {
		return nil, err
	}
	switch vis {
	case "", "private":
	case "public":
		c.public = true
	default:
		return nil, refuse(ErrInvalid, "createRoom visibility %q (want public or private)", vis)
	}
	switch c.preset {
	case "":
		c.preset = "private_chat"
		if c.public {
			c.preset = "public_chat"
		}
	case "public_chat", "private_chat", "trusted_private_chat":
	default:
		return nil, refuse(ErrInvalid, "createRoom preset %q (want public_chat, private_chat or trusted_private_chat)", c.preset)
	}
	aliasName, hasAlias, err := configString(config, "room_alias_name")
	if err != nil {
		return nil, err
	}
	if hasAlias {
		if aliasName == "" || strings.ContainsAny(aliasName, ":# \t\r\n") {
			return nil, refuse(ErrInvalid, "room_alias_name %q must be non-empty, without ':', '#' or whitespace", aliasName)
		}
		c.alias = "#" + aliasName + ":" + h.serverName
		if len(c.alias) > 255 {
			return nil, refuse(ErrInvalid, "room alias %q is longer than 255 bytes", c.alias)
		}
	}
	for _, key := range []string{"name", "topic"} {
		s, ok, err := configString(config, key)
		if err != nil {
			return nil, err
		}
		if ok {
			if key == "name" {
				c.name = &s
			} else {
				c.topic = &s
			}
		}
	}
	invites, err := configList(config, "invite")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{creator: true}
	for _, v := range invites {
		id, ok := v.(string)
		if !ok {
			return nil, refuse(ErrInvalid, "createRoom invite entries must be user ID strings, not %T", v)
		}
		if err := validUserID(id); err != nil {
			return nil, fmt.Errorf("createRoom invite: %w", err)
		}
		if !seen[id] {
			seen[id] = true
			c.invites = append(c.invites, id)
		}
	}
	if v, ok := config["is_direct"]; ok && v != nil {
		b, ok := v.(bool)
		if !ok {
			return nil, refuse(ErrInvalid, "createRoom is_direct must be a boolean, not %T", v)
		}
		c.isDirect = b
	}
	var hasVersion bool
	if c.roomVersion, hasVersion, err = configString(config, "room_version"); err != nil {
		return nil, err
	}
	if !hasVersion || c.roomVersion == "" {
		c.roomVersion = defaultRoomVersion
	}
	if c.creationContent, err = configMap(config, "creation_content"); err != nil {
		return nil, err
	}
	if c.plOverride, err = configMap(config, "power_level_content_override"); err != nil {
		return nil, err
	}
	initial, err := configList(config, "initial_state")
	if err != nil {
		return nil, err
	}
	for _, v := range initial {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, refuse(ErrInvalid, "createRoom initial_state entries must be objects, not %T", v)
		}
		typ, _ := m["type"].(string)
		if typ == "" || typ == evCreate || typ == evMember {
			return nil, refuse(ErrInvalid, "createRoom initial_state entry type %q (need a type other than %s and %s)", typ, evCreate, evMember)
		}
		key, _, err := configString(m, "state_key")
		if err != nil {
			return nil, err
		}
		content, err := configMap(m, "content")
		if err != nil {
			return nil, err
		}
		c.initialState = append(c.initialState, stateEvent(typ, key, creator, content))
	}
	return c, nil
}

// CreateRoom implements engine.RoomCreator, following Synapse's /createRoom:
// the creator (a local user) joins, presets set join rules (public for
// public_chat or visibility public, invite otherwise), history visibility
// and guest access, room_alias_name registers #name:server (ErrAliasInUse
// when taken), initial_state, name and topic follow, then the invites.
// Every piece of state is also an event on the room's timeline.
func (h *Host) CreateRoom(ctx context.Context, userID string, config map[string]any) (roomID, alias string, err error) {
	roomID, alias, err = h.CreateRoomChecked(ctx, userID, config, nil)
	if err == nil && config["visibility"] == "public" {
		// As Synapse's createRoom: visibility public lists the room in
		// the directory.
		err = h.SetPublished(ctx, roomID, true)
	}
	return roomID, alias, err
}

// EventCheck is asked about each event of a room being created, in order,
// with a copy of the state before it (where Synapse asks
// check_event_allowed). It may return a replacement whose content is used
// instead, or an error that aborts the creation; nil, nil keeps the event.
// It runs without the Host's lock held, so it may call the Host.
type EventCheck func(ev *engine.Event, before engine.StateMap) (*engine.Event, error)

// ErrCommitSoFar, wrapped in an EventCheck's error, stores the room with
// the events before the refused one, and CreateRoomChecked returns the
// room along with the error: Synapse's createRoom fails on a refused
// invite after the room exists.
var ErrCommitSoFar = errors.New("room stored up to the refused event")

// CreateRoomChecked is CreateRoom with check asked about every event
// before the room exists: the room is built aside and stored (with its
// alias) only once every event passed (or one was refused with
// ErrCommitSoFar).
func (h *Host) CreateRoomChecked(ctx context.Context, userID string, config map[string]any, check EventCheck) (roomID, alias string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	if err := validUserID(userID); err != nil {
		return "", "", fmt.Errorf("create room: %w", err)
	}
	c, err := h.parseRoomConfig(userID, config)
	if err != nil {
		return "", "", fmt.Errorf("create room: %w", err)
	}
	if err := h.checkCreateRoom(userID, c); err != nil {
		return "", "", err
	}
	h.mu.RLock()
	creatorName, creatorAvatar := h.users[userID].displayName, h.users[userID].avatarURL
	h.mu.RUnlock()
	roomID = "!" + randomUpper(18) + ":" + h.serverName
	r := &room{id: roomID, creator: userID, state: engine.StateMap{}}
	var buildErr error
	add := func(ev *engine.Event) {
		if buildErr != nil {
			return
		}
		r.stamp(ev)
		if check != nil {
			rep, err := check(cloneEvent(ev), cloneState(r.state))
			if err != nil {
				buildErr = err
				return
			}
			if rep != nil {
				ev.Content = cloneMap(rep.ContentMap())
				if ev.Content == nil {
					ev.Content = map[string]any{}
				}
			}
		}
		r.record(ev)
	}
	createContent := c.creationContent
	if createContent == nil {
		createContent = map[string]any{}
	}
	createContent["room_version"] = c.roomVersion
	if n, err := strconv.Atoi(c.roomVersion); err != nil || n < 11 {
		createContent["creator"] = userID // dropped from room version 11 on
	}
	add(stateEvent(evCreate, "", userID, createContent))

	join := map[string]any{"membership": "join"}
	if creatorName != "" {
		join["displayname"] = creatorName
	}
	if creatorAvatar != "" {
		join["avatar_url"] = creatorAvatar
	}
	add(stateEvent(evMember, userID, userID, join))

	initial := map[string]*engine.Event{}
	for _, ev := range c.initialState {
		initial[ev.Type+"\x00"+*ev.StateKey] = ev
	}
	has := func(typ string) bool { return initial[typ+"\x00"] != nil }

	pl := map[string]any{
		"users":          map[string]any{userID: 100},
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         50,
		"events": map[string]any{
			evName:              50,
			evPowerLevels:       100,
			evHistoryVisibility: 100,
			evCanonicalAlias:    50,
			"m.room.avatar":     50,
			"m.room.tombstone":  100,
			"m.room.server_acl": 100,
			"m.room.encryption": 100,
		},
	}
	if c.preset != "public_chat" {
		pl["invite"] = 0
	}
	if c.preset == "trusted_private_chat" {
		users := pl["users"].(map[string]any)
		for _, id := range c.invites {
			users[id] = 100
		}
	}
	if ev := initial[evPowerLevels+"\x00"]; ev != nil {
		pl = ev.Content
		if pl == nil {
			pl = map[string]any{}
		}
		delete(initial, evPowerLevels+"\x00")
	}
	for k, v := range c.plOverride {
		pl[k] = v
	}
	add(stateEvent(evPowerLevels, "", userID, pl))

	if c.alias != "" {
		add(stateEvent(evCanonicalAlias, "", userID, map[string]any{"alias": c.alias}))
	}
	if !has(evJoinRules) {
		rule := "invite"
		if c.preset == "public_chat" {
			rule = "public"
		}
		add(stateEvent(evJoinRules, "", userID, map[string]any{"join_rule": rule}))
	}
	if !has(evHistoryVisibility) {
		add(stateEvent(evHistoryVisibility, "", userID, map[string]any{"history_visibility": "shared"}))
	}
	if c.preset != "public_chat" && !has(evGuestAccess) {
		add(stateEvent(evGuestAccess, "", userID, map[string]any{"guest_access": "can_join"}))
	}
	for _, ev := range c.initialState {
		if initial[ev.Type+"\x00"+*ev.StateKey] == ev {
			add(ev)
		}
	}
	if c.name != nil {
		add(stateEvent(evName, "", userID, map[string]any{"name": *c.name}))
	}
	if c.topic != nil {
		add(stateEvent(evTopic, "", userID, map[string]any{"topic": *c.topic}))
	}
	for _, id := range c.invites {
		content := map[string]any{"membership": "invite"}
		if c.isDirect {
			content["is_direct"] = true
		}
		add(stateEvent(evMember, id, userID, content))
	}
	if buildErr != nil && !errors.Is(buildErr, ErrCommitSoFar) {
		return "", "", buildErr
	}
	if err := h.commitRoom(userID, r, c); err != nil {
		return "", "", err
	}
	return roomID, c.alias, buildErr
}

// checkCreateRoom checks what must exist (or not) for c.
func (h *Host) checkCreateRoom(userID string, c *roomConfig) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if u := h.users[userID]; u == nil || u.deactivated {
		return fmt.Errorf("create room: creator %s: %w", userID, engine.ErrNotFound)
	}
	if c.alias != "" {
		if _, taken := h.aliases[c.alias]; taken {
			return fmt.Errorf("create room: %w", refuse(ErrAliasInUse, "%s", c.alias))
		}
	}
	for _, id := range c.invites {
		if h.isLocal(id) && h.users[id] == nil {
			return fmt.Errorf("create room: invitee %s: %w", id, engine.ErrNotFound)
		}
	}
	return nil
}

// commitRoom stores a built room: its events take their stream positions
// now. What was checked before building is checked again, as the lock
// was released meanwhile.
func (h *Host) commitRoom(userID string, r *room, c *roomConfig) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.users[userID] == nil {
		return fmt.Errorf("create room: creator %s: %w", userID, engine.ErrNotFound)
	}
	if c.alias != "" {
		if _, taken := h.aliases[c.alias]; taken {
			return fmt.Errorf("create room: %w", refuse(ErrAliasInUse, "%s", c.alias))
		}
		h.aliases[c.alias] = r.id
	}
	if h.rooms[r.id] != nil {
		return fmt.Errorf("create room: room ID %s already exists", r.id)
	}
	r.h = h
	for i := range r.timeline {
		r.timeline[i].pos = h.advance()
	}
	h.rooms[r.id] = r
	return nil
}
