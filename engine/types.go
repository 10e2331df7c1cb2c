package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// Plain Go shapes of the Matrix values that cross the boundary. They carry
// JSON tags and depend on no homeserver library, so any Go homeserver can
// fill them from its own types.

// Event is a Matrix event as a client or a module sees it.
//
// An Event built by EventFromJSON keeps its content as JSON: Content is
// nil and ContentMap decodes it on first use, and a script that reads
// event.content gets it decoded straight from the JSON. Go code should
// read the content with ContentMap, which works for both kinds.
type Event struct {
	EventID        string         `json:"event_id,omitempty"`
	Type           string         `json:"type"`
	RoomID         string         `json:"room_id,omitempty"`
	Sender         string         `json:"sender"`
	StateKey       *string        `json:"state_key,omitempty"`
	Content        map[string]any `json:"content"`
	OriginServerTS int64          `json:"origin_server_ts,omitempty"`
	Unsigned       map[string]any `json:"unsigned,omitempty"`
	Redacts        string         `json:"redacts,omitempty"`

	lazy *lazyContent // set by EventFromJSON while Content is nil
}

type lazyContent struct {
	raw  json.RawMessage
	once sync.Once
	m    map[string]any
	err  error
}

// EventFromJSON builds an Event from its JSON (a client or federation
// event body, or the homeserver's stored form). Only the top-level fields
// are decoded; the content stays JSON until something reads it, so a spam
// check on the send path costs one pass over the envelope.
func EventFromJSON(raw []byte) (*Event, error) {
	var env struct {
		EventID        string          `json:"event_id"`
		Type           string          `json:"type"`
		RoomID         string          `json:"room_id"`
		Sender         string          `json:"sender"`
		StateKey       *string         `json:"state_key"`
		Content        json.RawMessage `json:"content"`
		OriginServerTS int64           `json:"origin_server_ts"`
		Unsigned       map[string]any  `json:"unsigned"`
		Redacts        string          `json:"redacts"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("event JSON: %w", err)
	}
	ev := &Event{EventID: env.EventID, Type: env.Type, RoomID: env.RoomID, Sender: env.Sender,
		StateKey: env.StateKey, OriginServerTS: env.OriginServerTS, Unsigned: env.Unsigned, Redacts: env.Redacts}
	content := bytes.TrimSpace(env.Content)
	switch {
	case len(content) == 0 || string(content) == "null":
		ev.Content = map[string]any{}
	case content[0] != '{':
		return nil, fmt.Errorf("event JSON: content must be an object")
	default:
		ev.lazy = &lazyContent{raw: content}
	}
	return ev, nil
}

// JSONEvent is what a homeserver's own event type usually offers: its
// JSON, and its ID (room versions 3 and later leave event_id out of the
// JSON).
type JSONEvent interface {
	JSON() []byte
	EventID() string
}

// EventOf builds an Event from a homeserver's event (see EventFromJSON).
func EventOf(e JSONEvent) (*Event, error) {
	ev, err := EventFromJSON(e.JSON())
	if err != nil {
		return nil, err
	}
	if id := e.EventID(); id != "" {
		ev.EventID = id
	}
	return ev, nil
}

// ContentMap returns the event's content, decoding it on first use when
// the event came from EventFromJSON. Safe from any goroutine.
func (e *Event) ContentMap() map[string]any {
	if e.Content != nil || e.lazy == nil {
		return e.Content
	}
	l := e.lazy
	l.once.Do(func() {
		l.err = json.Unmarshal(l.raw, &l.m)
	})
	return l.m
}

// rawContent is the content JSON of an event built by EventFromJSON whose
// Content was not set since.
func (e *Event) rawContent() json.RawMessage {
	if e.Content == nil && e.lazy != nil {
		return e.lazy.raw
	}
	return nil
}

// MarshalJSON encodes the event, with its content however it is held.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	if raw := e.rawContent(); raw != nil {
		return json.Marshal(struct {
			plain
			Content json.RawMessage `json:"content"`
		}{plain(e), raw})
	}
	return json.Marshal(plain(e))
}

// IsState reports whether the event is a state event.
func (e *Event) IsState() bool { return e.StateKey != nil }

// StateMap is a room's state: StateMap[event_type][state_key] = event,
// the same shape a script indexes.
type StateMap map[string]map[string]*Event

// Get returns the state event for (typ, stateKey), or nil.
func (s StateMap) Get(typ, stateKey string) *Event { return s[typ][stateKey] }

// Put stores ev under its type and state key.
func (s StateMap) Put(ev *Event) {
	if ev.StateKey == nil {
		return
	}
	m := s[ev.Type]
	if m == nil {
		m = map[string]*Event{}
		s[ev.Type] = m
	}
	m[*ev.StateKey] = ev
}

// Requester is who made a request (Synapse's Requester).
type Requester struct {
	UserID       string `json:"user_id"`
	DeviceID     string `json:"device_id,omitempty"`
	IsGuest      bool   `json:"is_guest"`
	ShadowBanned bool   `json:"shadow_banned"`
	AppServiceID string `json:"app_service_id,omitempty"`
	AccessToken  string `json:"-"`
}

// Profile is a user's public profile (Synapse's ProfileInfo).
type Profile struct {
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// UserInfo is what get_userinfo_by_id returns (Synapse's UserInfo).
type UserInfo struct {
	UserID       string `json:"user_id"`
	IsAdmin      bool   `json:"is_admin"`
	IsGuest      bool   `json:"is_guest"`
	Deactivated  bool   `json:"is_deactivated"`
	ShadowBanned bool   `json:"is_shadow_banned"`
	CreationTS   int64  `json:"creation_ts"`
	Locked       bool   `json:"locked"`
}

// PresenceState is one user's presence.
type PresenceState struct {
	UserID          string `json:"user_id"`
	State           string `json:"state"`
	LastActiveTS    int64  `json:"last_active_ts,omitempty"`
	StatusMsg       string `json:"status_msg,omitempty"`
	CurrentlyActive bool   `json:"currently_active"`
}

// NewUser describes a user to register.
type NewUser struct {
	Localpart   string   `json:"localpart"`
	DisplayName string   `json:"displayname,omitempty"`
	Emails      []string `json:"emails,omitempty"`
	Admin       bool     `json:"admin,omitempty"`
}

// Device is a registered device and its access token.
type Device struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	AccessToken string `json:"access_token"`
}

// RoomAlias is the answer to an alias look-up.
type RoomAlias struct {
	RoomID  string   `json:"room_id"`
	Servers []string `json:"servers"`
}
