package engine

import (
	"context"
	"errors"
)

// Host is the homeserver behind the modules' host functions (Synapse's
// ModuleApi). Only ServerName is required. Every other capability is one
// of the small interfaces below, found by type assertion, so a homeserver
// implements just what it can: a script calling a host function whose
// capability the host lacks (or whose method returns ErrNotSupported)
// gets the error "<function>: not supported by this homeserver".
//
// The engine calls every method from many goroutines at once; each must
// honour ctx, which carries the calling script's deadline.
type Host interface {
	ServerName() string
}

var (
	// ErrNotFound is what a look-up returns for something that does not
	// exist; the script sees nil (Synapse's None).
	ErrNotFound = errors.New("not found")
	// ErrNotSupported is what a capability method returns when this
	// homeserver cannot do it after all; the script sees
	// "<function>: not supported by this homeserver".
	ErrNotSupported = errors.New("not supported by this homeserver")
)

// UserChecker serves api.check_user_exists.
type UserChecker interface {
	// CheckUserExists returns the canonical user ID (case-corrected) or ""
	// when there is no such user.
	CheckUserExists(ctx context.Context, userID string) (string, error)
}

// UserInfoGetter serves api.get_userinfo_by_id and api.is_user_admin.
type UserInfoGetter interface {
	// UserInfo returns ErrNotFound for an unknown user.
	UserInfo(ctx context.Context, userID string) (*UserInfo, error)
}

// ProfileGetter serves api.get_profile_for_user.
type ProfileGetter interface {
	// Profile returns ErrNotFound for an unknown user.
	Profile(ctx context.Context, userID string) (*Profile, error)
}

// DisplayNameSetter serves api.set_displayname.
type DisplayNameSetter interface {
	SetDisplayName(ctx context.Context, userID, displayName string) error
}

// UserRegisterer serves api.register_user.
type UserRegisterer interface {
	RegisterUser(ctx context.Context, u NewUser) (userID string, err error)
}

// DeviceRegisterer serves api.register_device.
type DeviceRegisterer interface {
	// RegisterDevice creates a device (deviceID "" picks one) and an access
	// token for it.
	RegisterDevice(ctx context.Context, userID, deviceID, initialDisplayName string) (*Device, error)
}

// TokenAuthenticator resolves access tokens: api.get_user_by_req.
type TokenAuthenticator interface {
	// UserByAccessToken returns ErrNotFound for an unknown token.
	UserByAccessToken(ctx context.Context, token string) (*Requester, error)
}

// RoomStateGetter serves api.get_room_state.
type RoomStateGetter interface {
	// RoomState returns the current state of a room. filter, when not
	// empty, names the (type, state_key) pairs the script asked for: a
	// host may use it to fetch less, or ignore it (the engine drops what
	// was not asked for). ErrNotFound for an unknown room.
	RoomState(ctx context.Context, roomID string, filter []StateFilter) (StateMap, error)
}

// StateFilter selects state in RoomState.
type StateFilter struct {
	Type     string
	StateKey string
	AnyKey   bool // every state key of Type
}

// EventSender serves api.create_and_send_event_into_room.
type EventSender interface {
	// SendEvent creates, signs and sends an event built from ev (type,
	// room_id, sender, content, state_key); it returns the stored event.
	SendEvent(ctx context.Context, ev *Event) (*Event, error)
}

// MembershipUpdater serves api.update_room_membership.
type MembershipUpdater interface {
	UpdateMembership(ctx context.Context, sender, target, roomID, membership string, content map[string]any) (*Event, error)
}

// RoomCreator serves api.create_room.
type RoomCreator interface {
	// CreateRoom creates a room as userID with a /createRoom body; it
	// returns the room ID and the alias if one was requested.
	CreateRoom(ctx context.Context, userID string, config map[string]any) (roomID, alias string, err error)
}

// AliasResolver serves api.lookup_room_alias.
type AliasResolver interface {
	// LookupRoomAlias returns ErrNotFound for an unknown alias.
	LookupRoomAlias(ctx context.Context, alias string) (*RoomAlias, error)
}

// AccountDataStore serves api.account_data_manager.get_global and
// put_global.
type AccountDataStore interface {
	// GlobalAccountData returns nil, nil when the user has none of typ.
	GlobalAccountData(ctx context.Context, userID, typ string) (map[string]any, error)
	PutGlobalAccountData(ctx context.Context, userID, typ string, content map[string]any) error
}

// PresenceSetter serves api.set_presence_for_users.
type PresenceSetter interface {
	SetPresence(ctx context.Context, states []PresenceState) error
}

// PresenceSender serves api.send_local_online_presence_to (used by
// presence routers).
type PresenceSender interface {
	// SendLocalOnlinePresenceTo sends the presence of local online users
	// to the given users.
	SendLocalOnlinePresenceTo(ctx context.Context, userIDs []string) error
}

// ThreepidGetter serves api.get_threepids_for_user.
type ThreepidGetter interface {
	// ThreepidsForUser returns the user's third-party identifiers (email
	// addresses, phone numbers); none (not an error) for an unknown user,
	// as in Synapse.
	ThreepidsForUser(ctx context.Context, userID string) ([]Threepid, error)
}

// Threepid is one third-party identifier bound to an account, as
// Synapse's get_threepids_for_user gives it.
type Threepid struct {
	Medium      string `json:"medium"`  // "email" or "msisdn"
	Address     string `json:"address"` // lower-cased email, or the phone number
	ValidatedAt int64  `json:"validated_at"`
	AddedAt     int64  `json:"added_at"` // both in milliseconds since the epoch
}

// MailSender, when the host implements it, sends api.send_mail's emails
// through the homeserver's own mailer; otherwise the engine sends them
// itself over SMTP with the config's email: section.
type MailSender interface {
	SendMail(ctx context.Context, m Mail) error
}

// Mail is one email of api.send_mail(recipient, subject, html, text).
type Mail struct {
	To, Subject, HTML, Text string
	// AppName is api.email_app_name (the config's email.app_name).
	AppName string
}

// StateEventsGetter serves api.get_state_events_in_room. A host without
// it but with RoomStateGetter serves it too: the engine flattens the
// state map.
type StateEventsGetter interface {
	// StateEvents returns the room's current state events; none for an
	// unknown room. filter, when not empty, names the (type, state_key)
	// pairs the script asked for: a host may use it to fetch less, or
	// ignore it (the engine drops what was not asked for).
	StateEvents(ctx context.Context, roomID string, filter []StateFilter) ([]*Event, error)
}

// PublicRoomListChecker serves api.room_is_in_public_room_list and
// api.public_room_list_manager.room_is_in_public_room_list.
type PublicRoomListChecker interface {
	// RoomIsInPublicRoomList is false for an unknown room.
	RoomIsInPublicRoomList(ctx context.Context, roomID string) (bool, error)
}

// PublicRoomListEditor serves
// api.public_room_list_manager.add_room_to_public_room_list and
// remove_room_from_public_room_list.
type PublicRoomListEditor interface {
	SetRoomInPublicRoomList(ctx context.Context, roomID string, published bool) error
}

// AccountExpiryChecker is the homeserver's own account-validity rule
// (Synapse's legacy account_validity config). api.get_user_by_req asks it
// when no module's is_user_expired has an opinion.
type AccountExpiryChecker interface {
	IsAccountExpired(ctx context.Context, userID string) (bool, error)
}

// serverOnly is the Host of an engine started without one.
type serverOnly string

func (s serverOnly) ServerName() string { return string(s) }
