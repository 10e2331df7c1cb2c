package luaapi

import (
	"fmt"
	"sort"
	"strings"

	"github.com/luahost/luahost/internal/sandbox"
)

// The callback catalogue is typed data: registration checks, the engine's
// generated invokers and Has constants, `luahost call`'s argument table,
// the LuaLS stubs and the docs reference tables all derive from this one
// table, so a new callback is one entry (plus, if it has a new way of
// combining answers, one rule in the engine). Facts follow Synapse's module
// API (shared/design/callbacks.md).

// Kind is the type of a callback argument as a script sees it.
type Kind string

const (
	KindEvent    Kind = "event"     // a Matrix event (read-only proxy)
	KindState    Kind = "state_map" // state[event_type][state_key] = event
	KindString   Kind = "string"
	KindOptStr   Kind = "string?" // string or nil
	KindBool     Kind = "boolean"
	KindNumber   Kind = "number"
	KindTable    Kind = "table"   // a JSON object
	KindOptTable Kind = "table?"  // a JSON object or nil
	KindArray    Kind = "array"   // a JSON array
	KindFile     Kind = "file"    // an uploaded file: file:read() returns its bytes
	KindRequest  Kind = "request" // an HTTP request, as web handlers get it
)

// ErrorPolicy says what a Lua error (or deadline) in one module's
// callback means for the operation.
type ErrorPolicy string

const (
	// OnErrorFail fails the operation: the invoker returns an error.
	OnErrorFail ErrorPolicy = "fail"
	// OnErrorClosed treats the error as a refusal, logged.
	OnErrorClosed ErrorPolicy = "closed"
	// OnErrorSkip logs and ignores this module's answer.
	OnErrorSkip ErrorPolicy = "skip"
)

// Combine is how the answers of several modules that registered the same
// callback become one. Each rule is implemented once, in the engine.
type Combine int

const (
	// CombineSpam: NOT_SPAM continues, an errcode (with optional extra
	// fields) rejects; the first rejection wins and later modules are not
	// called.
	CombineSpam Combine = iota + 1
	// CombineSpamThenInvite is CombineSpam, then user_may_invite(sender,
	// state_key, room_id) when every module allowed (federated invites).
	CombineSpamThenInvite
	// CombineFirstTrue: a boolean; the first true wins (default false).
	CombineFirstTrue
	// CombineFirstFalse: a boolean; the first false wins (default true).
	CombineFirstFalse
	// CombineRegistration: ALLOW, SHADOW_BAN or DENY; the first that is
	// not ALLOW wins.
	CombineRegistration
	// CombineEventAllowed: allowed [, replacement]; the first false
	// refuses, the first replacement is used at once.
	CombineEventAllowed
	// CombineChain: every module runs in order and may change the request
	// content, which the next module and the host see; a raise denies.
	CombineChain
	// CombineNotify: every module runs; answers are ignored.
	CombineNotify
	// CombineFirstValue: the first non-nil answer wins.
	CombineFirstValue
	// CombineOpinion: the first boolean wins; nil is no opinion.
	CombineOpinion
	// CombineFirstString: the first string answer wins.
	CombineFirstString
	// CombineAuth: user_id [, on_logged_in]; asked in order until one
	// accepts.
	CombineAuth
	// CombineMergeStates: user ID -> presence states, merged, arrays
	// unioned.
	CombineMergeStates
	// CombineUnionUsers: arrays of user IDs unioned; "ALL" from any wins.
	CombineUnionUsers
	// CombineMergeFields: tables merged, the last registered wins on a
	// clash, fields already in the event's unsigned are never overwritten.
	CombineMergeFields
	// CombineBatch: the controller's target duration [, batch-end function].
	CombineBatch
	// CombineBatchSize: the controller's batch size (default 100, ≥ 1).
	CombineBatchSize
	// CombineLegacyRenew: token_valid, token_stale, expiration_ts from the
	// first (the only) module.
	CombineLegacyRenew
	// CombineFirstInteger: the first integer answer wins.
	CombineFirstInteger
)

var combineDocs = map[Combine]string{
	CombineSpam:           "first rejection wins; later modules are not called",
	CombineSpamThenInvite: "first rejection wins; if every module allows, `user_may_invite(sender, state_key, room_id)` is asked next",
	CombineFirstTrue:      "first `true` wins",
	CombineFirstFalse:     "first `false` denies",
	CombineRegistration:   "first non-ALLOW wins",
	CombineEventAllowed:   "first `false` refuses; first replacement is used at once, later modules skipped",
	CombineChain:          "all run in order until one raises; changes pass to the next module",
	CombineNotify:         "all run, in order",
	CombineFirstValue:     "first non-nil",
	CombineOpinion:        "first non-nil wins; all nil = no opinion (the host decides)",
	CombineFirstString:    "first string",
	CombineAuth:           "asked in order until one accepts",
	CombineMergeStates:    "merged, arrays unioned",
	CombineUnionUsers:     "unioned; `\"ALL\"` from any module wins",
	CombineMergeFields:    "merged; the last registered wins on a clash; existing `unsigned` fields are never overwritten",
	CombineBatch:          "only the first registering module is used",
	CombineBatchSize:      "only the first registering module is used",
	CombineLegacyRenew:    "the module's answer",
	CombineFirstInteger:   "first integer",
}

// String is the rule in words, as the docs tables show it.
func (c Combine) String() string { return combineDocs[c] }

// Legacy says how a spam callback's deprecated boolean or string answer
// is read (Synapse before 1.60).
type Legacy int

const (
	LegacyNone      Legacy = iota // only NOT_SPAM or an errcode
	LegacyTrueAllow               // user_may_*: true allows, false rejects
	LegacyTrueSpam                // check_event_for_spam, media: true rejects; a plain string rejects with that message
)

// Arg is one callback argument.
type Arg struct {
	Name string
	Kind Kind
	// Go is the Go type of the argument in the engine's invoker when it is
	// not the Kind's default (see GoType).
	Go string
	// Late marks an argument Synapse added after the callback first
	// existed: callers may leave it out (it arrives as nil), so modules
	// written for older Synapse keep working.
	Late bool
}

// GoType is the argument's type in the engine's typed invoker.
func (a Arg) GoType() string {
	if a.Go != "" {
		return a.Go
	}
	switch a.Kind {
	case KindEvent:
		return "*Event"
	case KindState:
		return "StateMap"
	case KindString, KindOptStr:
		return "string"
	case KindBool:
		return "bool"
	case KindNumber:
		return "int64"
	case KindTable, KindOptTable:
		return "map[string]any"
	case KindArray:
		return "[]any"
	case KindFile:
		return "func() ([]byte, error)"
	case KindRequest:
		return "*http.Request"
	}
	return "any"
}

// Callback describes one callback.
type Callback struct {
	Category string // "spam_checker"
	Name     string // "check_event_for_spam"
	// Go is the engine's invoker method name, e.g. "CheckEventForSpam".
	Go      string
	Args    []Arg
	Returns string // what the script returns, in words
	Combine Combine
	// CombineNote adds a callback-specific detail to the combine rule.
	CombineNote string
	OnError     ErrorPolicy
	Legacy      Legacy
	// Deny is the message a client sees when this check refuses and the
	// module gave none (Synapse's wording where it has one).
	Deny string
	// Result is the Go type a CombineFirstValue invoker returns.
	Result string
	// Single: at most one module may register it (Synapse raises "Tried to
	// register ... twice" at the second registration).
	Single bool
	// Doc is the invoker's doc comment sentence.
	Doc string
}

// ID is "category.name".
func (c *Callback) ID() string { return c.Category + "." + c.Name }

// Notify reports whether every module runs and answers are ignored.
func (c *Callback) Notify() bool { return c.Combine == CombineNotify }

// CombineText is the combine rule in words, with this callback's detail.
func (c *Callback) CombineText() string {
	if c.CombineNote != "" {
		return c.Combine.String() + "; " + c.CombineNote
	}
	return c.Combine.String()
}

// Signature is the Lua signature, e.g. "check_event_for_spam(event)".
func (c *Callback) Signature() string {
	names := make([]string, len(c.Args))
	for i, a := range c.Args {
		names[i] = a.Name
	}
	return c.Name + "(" + strings.Join(names, ", ") + ")"
}

// MinArgs is how many arguments a caller must give (trailing Late ones
// may be left out).
func (c *Callback) MinArgs() int {
	n := len(c.Args)
	for n > 0 && c.Args[n-1].Late {
		n--
	}
	return n
}

// Category is one register_<name>_callbacks function.
type Category struct {
	Name      string
	Callbacks []*Callback
	// FirstModuleOnly: only the first module that registers this category
	// is used; later registrations are logged and ignored.
	FirstModuleOnly bool
	// AllOrNone: a module registers every callback of the category or none
	// (one alone is a load error).
	AllOrNone bool
}

// RegisterFunc is the module_api function that registers the category.
func (c *Category) RegisterFunc() string { return "register_" + c.Name + "_callbacks" }

func a(name string, k Kind) Arg { return Arg{Name: name, Kind: k} }

// late is an argument Synapse added later: it may be left out.
func late(name string, k Kind) Arg { return Arg{Name: name, Kind: k, Late: true} }

func typed(name string, k Kind, goType string) Arg { return Arg{Name: name, Kind: k, Go: goType} }

const spamReturn = "`api.NOT_SPAM`, or an errcode [, extra]"

const singleNote = "only one module may register it"

// Catalogue lists every category and callback, in Synapse's order.
var Catalogue = []*Category{
	{Name: "spam_checker", Callbacks: []*Callback{
		{Name: "check_event_for_spam", Go: "CheckEventForSpam", Args: []Arg{a("event", KindEvent)},
			Returns: spamReturn + "; legacy `false` allows, `true` or another string rejects", Combine: CombineSpam, OnError: OnErrorFail,
			Legacy: LegacyTrueSpam, Deny: "This message has been rejected as probable spam",
			Doc: "asks the spam checkers about an event from a client or another server"},
		{Name: "should_drop_federated_event", Go: "ShouldDropFederatedEvent", Args: []Arg{a("event", KindEvent)},
			Returns: "boolean", Combine: CombineFirstTrue, CombineNote: "`true` drops the event", OnError: OnErrorFail,
			Doc: "asks whether a federated event should be dropped before any other processing"},
		{Name: "user_may_join_room", Go: "UserMayJoinRoom", Args: []Arg{a("user_id", KindString), a("room_id", KindString), a("is_invited", KindBool)},
			Returns: spamReturn + "; legacy `true` allows, `false` rejects", Combine: CombineSpam, OnError: OnErrorFail,
			Legacy: LegacyTrueAllow, Deny: "You are not allowed to join this room",
			Doc: "asks whether a user may join a room"},
		{Name: "user_may_invite", Go: "UserMayInvite", Args: []Arg{a("inviter", KindString), a("invitee", KindString), a("room_id", KindString)},
			Returns: spamReturn + "; legacy booleans", Combine: CombineSpam, OnError: OnErrorFail,
			Legacy: LegacyTrueAllow, Deny: "You are not allowed to invite this user",
			Doc: "asks whether inviter may invite invitee into a room"},
		{Name: "federated_user_may_invite", Go: "FederatedUserMayInvite", Args: []Arg{a("event", KindEvent)},
			Returns: spamReturn, Combine: CombineSpamThenInvite, OnError: OnErrorFail,
			Legacy: LegacyTrueAllow, Deny: "You are not allowed to invite this user",
			Doc: "asks about an invite event from another server; when every module allows it, user_may_invite is asked next, as Synapse does"},
		{Name: "user_may_send_3pid_invite", Go: "UserMaySend3PIDInvite", Args: []Arg{a("inviter", KindString), a("medium", KindString), a("address", KindString), a("room_id", KindString)},
			Returns: spamReturn + "; legacy booleans", Combine: CombineSpam, OnError: OnErrorFail,
			Legacy: LegacyTrueAllow, Deny: "You are not allowed to send this invite",
			Doc: "asks whether a third-party invite may be sent"},
		{Name: "user_may_create_room", Go: "UserMayCreateRoom", Args: []Arg{a("user_id", KindString), late("room_config", KindTable)},
			Returns: spamReturn + "; legacy booleans", Combine: CombineSpam, OnError: OnErrorFail,
			Legacy: LegacyTrueAllow, Deny: "You are not allowed to create rooms",
			Doc: "asks whether a user may create a room with this /createRoom body"},
		{Name: "user_may_create_room_alias", Go: "UserMayCreateRoomAlias", Args: []Arg{a("user_id", KindString), a("room_alias", KindString)},
			Returns: spamReturn + "; legacy booleans", Combine: CombineSpam, OnError: OnErrorFail,
			Legacy: LegacyTrueAllow, Deny: "You are not allowed to create this alias",
			Doc: "asks whether a user may create a room alias"},
		{Name: "user_may_publish_room", Go: "UserMayPublishRoom", Args: []Arg{a("user_id", KindString), a("room_id", KindString)},
			Returns: spamReturn + "; legacy booleans", Combine: CombineSpam, OnError: OnErrorFail,
			Legacy: LegacyTrueAllow, Deny: "You are not allowed to publish this room",
			Doc: "asks whether a user may publish a room to the directory"},
		{Name: "user_may_send_state_event", Go: "UserMaySendStateEvent", Args: []Arg{a("user_id", KindString), a("room_id", KindString), a("event_type", KindString), a("state_key", KindString), a("content", KindTable)},
			Returns: spamReturn + " only (anything else rejects)", Combine: CombineSpam, OnError: OnErrorFail,
			Deny: "You are not allowed to send this state event",
			Doc:  "asks whether a user may send a state event"},
		{Name: "check_username_for_spam", Go: "CheckUsernameForSpam", Args: []Arg{a("user_profile", KindTable), late("requester_id", KindString)},
			Returns: "boolean, `true` = spammy (hidden from user-directory search)", Combine: CombineFirstTrue, OnError: OnErrorFail,
			Doc: "asks whether a user should be hidden from user-directory search (true = spammy)"},
		{Name: "check_registration_for_spam", Go: "CheckRegistrationForSpam", Args: []Arg{a("email_threepid", KindOptTable), a("username", KindOptStr), typed("request_info", KindArray, "[]RequestInfo"), late("auth_provider_id", KindOptStr)},
			Returns: "`api.RegistrationBehaviour.ALLOW`, `SHADOW_BAN` or `DENY`", Combine: CombineRegistration, OnError: OnErrorFail,
			Doc: "asks whether a registration may go ahead (emailThreepid may be nil, username and authProviderID empty)"},
		{Name: "check_media_file_for_spam", Go: "CheckMediaFileForSpam", Args: []Arg{a("file", KindFile), a("file_info", KindTable)},
			Returns: spamReturn + "; legacy `false` allows, `true` rejects", Combine: CombineSpam, OnError: OnErrorFail,
			Legacy: LegacyTrueSpam, Deny: "This file has been rejected as probable spam",
			Doc: "asks about an uploaded file; read returns its bytes when the script calls file:read()"},
		{Name: "check_login_for_spam", Go: "CheckLoginForSpam", Args: []Arg{a("user_id", KindString), a("device_id", KindOptStr), a("initial_display_name", KindOptStr), typed("request_info", KindArray, "[]RequestInfo"), a("auth_provider_id", KindOptStr)},
			Returns: spamReturn, Combine: CombineSpam, OnError: OnErrorFail, Deny: "Login has been refused",
			Doc: "asks whether a login may proceed"},
	}},
	{Name: "third_party_rules", Callbacks: []*Callback{
		{Name: "check_event_allowed", Go: "CheckEventAllowed", Args: []Arg{a("event", KindEvent), a("state_events", KindState)},
			Returns: "`allowed [, replacement_event]`", Combine: CombineEventAllowed, OnError: OnErrorClosed,
			Deny: "This event is not allowed in this context",
			Doc:  "asks whether an event may be sent, and lets a module replace it; a SynapseError the script raises is the refusal"},
		{Name: "on_create_room", Go: "OnCreateRoom", Args: []Arg{typed("requester", KindTable, "*Requester"), a("request_content", KindTable), a("is_requester_admin", KindBool)},
			Returns: "nothing; may modify `request_content`", Combine: CombineChain, OnError: OnErrorFail,
			Deny: "Room creation forbidden with these parameters",
			Doc:  "runs every module on a /createRoom body; each may change it, and the result is what the host should create. A raise refuses the creation"},
		{Name: "check_threepid_can_be_invited", Go: "CheckThreepidCanBeInvited", Args: []Arg{a("medium", KindString), a("address", KindString), a("state_events", KindState)},
			Returns: "boolean", Combine: CombineFirstFalse, OnError: OnErrorSkip,
			Doc: "asks whether a third-party identifier may be invited"},
		{Name: "check_visibility_can_be_modified", Go: "CheckVisibilityCanBeModified", Args: []Arg{a("room_id", KindString), a("state_events", KindState), a("new_visibility", KindString)},
			Returns: "boolean", Combine: CombineFirstFalse, OnError: OnErrorSkip,
			Doc: "asks whether a room's directory visibility may change"},
		{Name: "on_new_event", Go: "OnNewEvent", Args: []Arg{a("event", KindEvent), a("state_events", KindState)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorSkip,
			Doc: "tells every module about an event that was sent"},
		{Name: "check_can_shutdown_room", Go: "CheckCanShutdownRoom", Args: []Arg{a("user_id", KindOptStr), a("room_id", KindString)},
			Returns: "boolean", Combine: CombineFirstFalse, CombineNote: "403", OnError: OnErrorSkip,
			Doc: "asks whether a room may be shut down (userID may be empty)"},
		{Name: "check_can_deactivate_user", Go: "CheckCanDeactivateUser", Args: []Arg{a("user_id", KindString), a("by_admin", KindBool)},
			Returns: "boolean", Combine: CombineFirstFalse, CombineNote: "403", OnError: OnErrorSkip,
			Doc: "asks whether a user may be deactivated"},
		{Name: "on_profile_update", Go: "OnProfileUpdate", Args: []Arg{a("user_id", KindString), typed("new_profile", KindTable, "Profile"), a("by_admin", KindBool), a("deactivation", KindBool)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorSkip,
			Doc: "tells every module about a profile change"},
		{Name: "on_user_deactivation_status_changed", Go: "OnUserDeactivationStatusChanged", Args: []Arg{a("user_id", KindString), a("deactivated", KindBool), a("by_admin", KindBool)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorSkip,
			Doc: "tells every module a user was deactivated or reactivated"},
		{Name: "on_threepid_bind", Go: "OnThreepidBind", Args: []Arg{a("user_id", KindString), a("medium", KindString), a("address", KindString)},
			Returns: "nothing (deprecated)", Combine: CombineNotify, OnError: OnErrorSkip,
			Doc: "tells every module a threepid was bound (deprecated in Synapse)"},
		{Name: "on_add_user_third_party_identifier", Go: "OnAddUserThirdPartyIdentifier", Args: []Arg{a("user_id", KindString), a("medium", KindString), a("address", KindString)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorSkip,
			Doc: "tells every module a third-party identifier was added to an account"},
		{Name: "on_remove_user_third_party_identifier", Go: "OnRemoveUserThirdPartyIdentifier", Args: []Arg{a("user_id", KindString), a("medium", KindString), a("address", KindString)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorSkip,
			Doc: "tells every module a third-party identifier was removed from an account"},
	}},
	{Name: "presence_router", AllOrNone: true, Callbacks: []*Callback{
		{Name: "get_users_for_states", Go: "GetUsersForStates", Args: []Arg{typed("state_updates", KindArray, "[]PresenceState")},
			Returns: "`{[user_id] = {state, ...}}`", Combine: CombineMergeStates, OnError: OnErrorSkip,
			Doc: "asks the presence routers which users should receive which presence updates"},
		{Name: "get_interested_users", Go: "GetInterestedUsers", Args: []Arg{a("user_id", KindString)},
			Returns: "array of user IDs or `api.PRESENCE_ALL_USERS`", Combine: CombineUnionUsers, OnError: OnErrorSkip,
			Doc: "asks the presence routers whose presence a user should see"},
	}},
	{Name: "account_validity", Callbacks: []*Callback{
		{Name: "is_user_expired", Go: "IsUserExpired", Args: []Arg{a("user_id", KindString)},
			Returns: "`true`, `false` or `nil` (no opinion)", Combine: CombineOpinion, OnError: OnErrorFail,
			Doc: "asks whether an account has expired; decided is false when no module had an opinion (the host applies its own rule)"},
		{Name: "on_user_registration", Go: "OnUserRegistration", Args: []Arg{a("user_id", KindString)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorFail,
			Doc: "tells every module a user registered"},
		{Name: "on_user_login", Go: "OnUserLogin", Args: []Arg{a("user_id", KindString), a("auth_provider_type", KindOptStr), a("auth_provider_id", KindOptStr)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorFail,
			Doc: "tells every module a user logged in"},
		{Name: "on_legacy_send_mail", Go: "OnLegacySendMail", Args: []Arg{a("user_id", KindString)}, Single: true,
			Returns: "nothing", Combine: CombineNotify, CombineNote: singleNote, OnError: OnErrorFail,
			Doc: "asks the module that registered it to send the user a renewal email (Synapse's legacy account_validity send_mail endpoint); when Has reports none did, the host does its own"},
		{Name: "on_legacy_renew", Go: "OnLegacyRenew", Args: []Arg{a("renewal_token", KindString)}, Single: true,
			Returns: "`token_valid, token_stale, expiration_ts`", Combine: CombineLegacyRenew, CombineNote: singleNote, OnError: OnErrorFail,
			Doc: "asks the module that registered it to renew an account with a renewal token (Synapse's legacy account_validity renew endpoint); nil when no module did, and the host renews itself"},
		{Name: "on_legacy_admin_request", Go: "OnLegacyAdminRequest", Args: []Arg{a("request", KindRequest)}, Single: true,
			Returns: "the new `expiration_ts` (ms)", Combine: CombineFirstInteger, CombineNote: singleNote, OnError: OnErrorFail,
			Doc: "hands the module that registered it an admin's POST /_synapse/admin/v1/account_validity/validity request (the engine reads its body); ok is false when no module did, and the host handles the request itself"},
	}},
	{Name: "password_auth_provider", Callbacks: []*Callback{
		{Name: "auth_checkers", Go: "CheckAuth", Args: []Arg{a("user", KindString), a("login_type", KindString), a("login_dict", KindTable)},
			Returns: "`user_id [, on_logged_in]` or nil", Combine: CombineAuth, OnError: OnErrorSkip,
			Doc: "asks the auth checkers declared for loginType, in order, until one accepts; nil means none did. loginDict is cut to each checker's declared fields"},
		{Name: "check_3pid_auth", Go: "Check3PIDAuth", Args: []Arg{a("medium", KindString), a("address", KindString), a("password", KindString)},
			Returns: "`user_id [, on_logged_in]` or nil", Combine: CombineAuth, OnError: OnErrorSkip,
			Doc: "asks check_3pid_auth in order until one accepts; nil means none did"},
		{Name: "on_logged_out", Go: "OnLoggedOut", Args: []Arg{a("user_id", KindString), a("device_id", KindOptStr), a("access_token", KindString)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorSkip,
			Doc: "tells every module a device logged out"},
		{Name: "get_username_for_registration", Go: "GetUsernameForRegistration", Args: []Arg{a("uia_results", KindTable), a("params", KindTable)},
			Returns: "localpart string or nil", Combine: CombineFirstString, OnError: OnErrorFail,
			Doc: "asks for the localpart of a new user; ok is false when no module chose one"},
		{Name: "get_displayname_for_registration", Go: "GetDisplaynameForRegistration", Args: []Arg{a("uia_results", KindTable), a("params", KindTable)},
			Returns: "string or nil", Combine: CombineFirstString, OnError: OnErrorFail,
			Doc: "asks for the display name of a new user; ok is false when no module chose one"},
		{Name: "is_3pid_allowed", Go: "Is3PIDAllowed", Args: []Arg{a("medium", KindString), a("address", KindString), a("registration", KindBool)},
			Returns: "boolean", Combine: CombineFirstFalse, OnError: OnErrorFail,
			Doc: "asks whether a third-party identifier may be used (registration is true during registration)"},
	}},
	{Name: "background_update_controller", FirstModuleOnly: true, Callbacks: []*Callback{
		{Name: "on_update", Go: "OnUpdate", Args: []Arg{a("update_name", KindString), a("database_name", KindString), a("one_shot", KindBool)},
			Returns: "target duration in ms [, function called when the batch ends]", Combine: CombineBatch, OnError: OnErrorFail,
			Doc: "asks the controller for the next batch's target duration; nil when no module controls updates. Call Done on the result when the batch ends"},
		{Name: "default_batch_size", Go: "DefaultBatchSize", Args: []Arg{a("update_name", KindString), a("database_name", KindString)},
			Returns: "integer (default 100)", Combine: CombineBatchSize, OnError: OnErrorFail,
			Doc: "asks the controller for the first batch size (default 100)"},
		{Name: "min_batch_size", Go: "MinBatchSize", Args: []Arg{a("update_name", KindString), a("database_name", KindString)},
			Returns: "integer ≥ 1 (default 100)", Combine: CombineBatchSize, OnError: OnErrorFail,
			Doc: "asks the controller for the smallest batch size (default 100)"},
	}},
	{Name: "account_data", Callbacks: []*Callback{
		{Name: "on_account_data_updated", Go: "OnAccountDataUpdated", Args: []Arg{a("user_id", KindString), a("room_id", KindOptStr), a("account_data_type", KindString), a("content", KindTable)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorSkip,
			Doc: "tells every module account data changed (roomID empty for global data; an empty content is a deletion)"},
	}},
	{Name: "add_extra_fields_to_unsigned_client_event", Callbacks: []*Callback{
		{Name: "add_field_to_unsigned_callback", Go: "AddFieldsToUnsigned", Args: []Arg{a("event", KindEvent)},
			Returns: "a table of fields", Combine: CombineMergeFields, OnError: OnErrorFail,
			Doc: "asks every module for fields to add to an event's unsigned section before it goes to a client"},
	}},
	{Name: "media_repository", Callbacks: []*Callback{
		{Name: "get_media_config_for_user", Go: "GetMediaConfigForUser", Args: []Arg{a("user_id", KindString)},
			Returns: "table (the /media/config body) or nil", Combine: CombineFirstValue, OnError: OnErrorFail, Result: "map[string]any",
			Doc: "asks for a user's /media/config body; nil when no module answered"},
		{Name: "is_user_allowed_to_upload_media_of_size", Go: "IsUserAllowedToUploadMediaOfSize", Args: []Arg{a("user_id", KindString), a("size", KindNumber)},
			Returns: "boolean", Combine: CombineFirstFalse, CombineNote: "413 `M_TOO_LARGE`", OnError: OnErrorFail,
			Doc: "asks whether a user may upload a file of this size"},
		{Name: "get_media_upload_limits_for_user", Go: "GetMediaUploadLimitsForUser", Args: []Arg{a("user_id", KindString)},
			Returns: "array of `{max_bytes, time_period_ms}` or nil", Combine: CombineFirstValue, CombineNote: "sorted by time_period_ms descending", OnError: OnErrorFail, Result: "[]MediaUploadLimit",
			Doc: "asks for a user's upload limits, sorted by period descending; nil when no module answered (an empty list is unlimited)"},
		{Name: "on_media_upload_limit_exceeded", Go: "OnMediaUploadLimitExceeded", Args: []Arg{a("user_id", KindString), typed("limit", KindTable, "MediaUploadLimit"), a("sent_bytes", KindNumber), a("attempted_bytes", KindNumber)},
			Returns: "nothing", Combine: CombineNotify, OnError: OnErrorFail,
			Doc: "tells every module a user went over an upload limit"},
	}},
	{Name: "ratelimit", Callbacks: []*Callback{
		{Name: "get_ratelimit_override_for_user", Go: "GetRatelimitOverrideForUser", Args: []Arg{a("user_id", KindString), a("limiter_name", KindString)},
			Returns: "`{per_second=, burst_count=}` or nil", Combine: CombineFirstValue, OnError: OnErrorFail, Result: "*RatelimitOverride",
			Doc: "asks for a per-user rate limit; nil when no module answered"},
	}},
}

// SynapseVersion is the Synapse release whose module callbacks the
// catalogue matches (docs/modules/*_callbacks.md and
// synapse/module_api/callbacks/ of that release).
const SynapseVersion = "1.157"

// NotInSynapse explains, by "category.name", callbacks a module may try to
// register that this Synapse release does not have: ones that exist only
// in a fork, and ones Synapse removed. Registering one fails at load with
// the explanation, rather than with "unknown callback".
var NotInSynapse = map[string]string{
	"spam_checker.accept_make_join": "accept_make_join exists only in a Synapse fork (maunium's, used by meowlnir and synapse-http-antispam); " +
		"luahost supports the callbacks of Synapse " + SynapseVersion + ": drop it from the registration (synapse-http-antispam: list enabled_callbacks without it)",
	"spam_checker.user_may_create_room_with_invites": "user_may_create_room_with_invites was removed in Synapse 1.53; " +
		"use user_may_create_room, whose room_config argument holds the invites",
}

var byID = map[string]*Callback{}
var byName = map[string][]*Callback{}

func init() {
	for _, cat := range Catalogue {
		for _, cb := range cat.Callbacks {
			cb.Category = cat.Name
			if byID[cb.ID()] != nil {
				panic("luahost: callback listed twice: " + cb.ID())
			}
			byID[cb.ID()] = cb
			byName[cb.Name] = append(byName[cb.Name], cb)
		}
	}
}

// LookupCallback finds a callback by "category.name" or, when the bare
// name is unambiguous, by name.
func LookupCallback(name string) (*Callback, error) {
	if cb := byID[name]; cb != nil {
		return cb, nil
	}
	switch cbs := byName[name]; len(cbs) {
	case 1:
		return cbs[0], nil
	case 0:
		names := make([]string, 0, len(byID))
		for _, cb := range byID {
			names = append(names, cb.Name)
		}
		if s := Suggest(name[strings.LastIndexByte(name, '.')+1:], names); s != "" {
			return nil, fmt.Errorf("unknown callback %q (did you mean %s?)", sandbox.Clip(name), s)
		}
		return nil, fmt.Errorf("unknown callback %q (the callbacks are listed in docs/callbacks/)", sandbox.Clip(name))
	default:
		return nil, fmt.Errorf("callback name %q is ambiguous: use category.name", sandbox.Clip(name))
	}
}

// MustCallback is LookupCallback for names fixed in Go code.
func MustCallback(id string) *Callback {
	cb := byID[id]
	if cb == nil {
		panic("luahost: no callback " + id)
	}
	return cb
}

// CategoryOf returns the category a callback belongs to.
func CategoryOf(cb *Callback) *Category {
	for _, cat := range Catalogue {
		if cat.Name == cb.Category {
			return cat
		}
	}
	return nil
}

// Suggest returns the candidate closest to name when it is close enough
// to be a likely slip (a "did you mean"), or "".
func Suggest(name string, candidates []string) string {
	best, bestD := "", 0
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		limit := max(2, len(c)/4)
		if d <= limit && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
