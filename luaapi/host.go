package luaapi

import (
	"context"
	"errors"
)

// Host is what the engine needs from the homeserver that embeds it. Only
// ServerName is required; everything else is an optional capability
// interface below, found by type assertion. A host function whose
// capability the host lacks raises "<name>: not supported by this
// homeserver" in the calling script.
//
// Every method may be called from any goroutine, concurrently, and must
// honour ctx (a module's call deadline).
type Host interface {
	ServerName() string
}

// ErrNotFound is returned by host look-ups when the thing does not exist;
// scripts see nil.
var ErrNotFound = errors.New("not found")

// UserHost manages local users: check_user_exists, get_userinfo_by_id,
// is_user_admin, get_profile_for_user, set_displayname, register_user,
// register_device.
type UserHost interface {
	// CheckUserExists returns the canonical user ID (case-corrected) or
	// "" when there is no such user.
	CheckUserExists(ctx context.Context, userID string) (string, error)
	// UserInfo returns ErrNotFound for an unknown user.
	UserInfo(ctx context.Context, userID string) (*UserInfo, error)
	Profile(ctx context.Context, userID string) (*Profile, error)
	SetDisplayName(ctx context.Context, userID, displayName string) error
	RegisterUser(ctx context.Context, u NewUser) (userID string, err error)
	// RegisterDevice creates a device (deviceID "" picks one) and an
	// access token for it.
	RegisterDevice(ctx context.Context, userID, deviceID, initialDisplayName string) (*Device, error)
}

// AuthHost resolves access tokens (api.get_user_by_req).
type AuthHost interface {
	// UserByAccessToken returns ErrNotFound for an unknown token.
	UserByAccessToken(ctx context.Context, token string) (*Requester, error)
}

// RoomHost reads and writes rooms: get_room_state,
// create_and_send_event_into_room, update_room_membership, create_room,
// lookup_room_alias.
type RoomHost interface {
	// RoomState returns the current state; with filter non-empty only
	// those (type, state_key) pairs (state_key "" with Any=true = every key).
	RoomState(ctx context.Context, roomID string, filter []StateFilter) (StateMap, error)
	// SendEvent creates, signs and sends an event built from ev (type,
	// room_id, sender, content, state_key); it returns the stored event.
	SendEvent(ctx context.Context, ev *Event) (*Event, error)
	UpdateMembership(ctx context.Context, sender, target, roomID, membership string, content map[string]any) (*Event, error)
	// CreateRoom creates a room as userID with a /createRoom body; it
	// returns the room ID and the alias if one was requested.
	CreateRoom(ctx context.Context, userID string, config map[string]any) (roomID, alias string, err error)
	// LookupRoomAlias returns ErrNotFound for an unknown alias.
	LookupRoomAlias(ctx context.Context, alias string) (*RoomAlias, error)
}

// StateFilter selects state in RoomState.
type StateFilter struct {
	Type     string
	StateKey string
	AnyKey   bool // every state key of Type
}

// AccountDataHost stores global account data (account_data_manager).
type AccountDataHost interface {
	// GlobalAccountData returns nil, nil when the user has none of typ.
	GlobalAccountData(ctx context.Context, userID, typ string) (map[string]any, error)
	PutGlobalAccountData(ctx context.Context, userID, typ string, content map[string]any) error
}

// PresenceHost sets and sends presence.
type PresenceHost interface {
	SetPresence(ctx context.Context, states []PresenceState) error
	// SendLocalOnlinePresenceTo sends the presence of local online users
	// to the given users (used by presence routers).
	SendLocalOnlinePresenceTo(ctx context.Context, userIDs []string) error
}

// UnimplementedHost implements Host with a server name and nothing else;
// embed it and add the capability methods your homeserver has.
type UnimplementedHost struct{ Name string }

// ServerName implements Host.
func (h UnimplementedHost) ServerName() string { return h.Name }
