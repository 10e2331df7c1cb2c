package luaapi

// Plain Go shapes of the Matrix values that cross the boundary. They carry
// JSON tags and depend on no homeserver library, so any Go homeserver can
// fill them from its own types.

// Event is a Matrix event as a client or a module sees it.
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
