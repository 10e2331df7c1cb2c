package luaapi

import (
	"fmt"
	"sort"
	"strings"
)

// The callback catalogue is data: registration checks, the typed
// invokers' combine rules, `luahost call` argument parsing and the docs
// reference tables all read this one table, so a new callback is one
// entry plus its semantics. Facts follow Synapse's module API
// (shared/design/callbacks.md).

// Kind is the type of a callback argument as a script sees it.
type Kind string

const (
	KindEvent    Kind = "event"     // a Matrix event (read-only proxy)
	KindState    Kind = "state_map" // state[event_type][state_key] = event
	KindString   Kind = "string"
	KindOptStr   Kind = "string?" // string or nil
	KindBool     Kind = "boolean"
	KindNumber   Kind = "number"
	KindTable    Kind = "table"  // a JSON object
	KindOptTable Kind = "table?" // a JSON object or nil
	KindArray    Kind = "array"  // a JSON array
	KindAny      Kind = "any"    // any JSON value
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

// Arg is one callback argument.
type Arg struct {
	Name string
	Kind Kind
}

// Callback describes one callback.
type Callback struct {
	Category string // "spam_checker"
	Name     string // "check_event_for_spam"
	Args     []Arg
	Returns  string // what the script returns
	Combine  string // how several modules' results become one
	OnError  ErrorPolicy
	// Notify marks callbacks whose results are ignored (notifications).
	Notify bool
}

// ID is "category.name".
func (c *Callback) ID() string { return c.Category + "." + c.Name }

// Signature is the Lua signature, e.g. "check_event_for_spam(event)".
func (c *Callback) Signature() string {
	names := make([]string, len(c.Args))
	for i, a := range c.Args {
		names[i] = a.Name
	}
	return c.Name + "(" + strings.Join(names, ", ") + ")"
}

// Category is one register_<name>_callbacks function.
type Category struct {
	Name      string
	Callbacks []*Callback
}

// RegisterFunc is the module_api function that registers the category.
func (c *Category) RegisterFunc() string { return "register_" + c.Name + "_callbacks" }

func a(name string, k Kind) Arg { return Arg{name, k} }

const (
	spamReturn = "`api.NOT_SPAM`, or an errcode [, extra]"
	spamFirst  = "first rejection wins; later modules are not called"
	allRun     = "all run, in order"
	firstFalse = "first `false` denies"
)

// Catalogue lists every category and callback, in Synapse's order.
var Catalogue = []*Category{
	{Name: "spam_checker", Callbacks: []*Callback{
		{Name: "check_event_for_spam", Args: []Arg{a("event", KindEvent)}, Returns: spamReturn + "; legacy `false` allows, `true` or another string rejects", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "should_drop_federated_event", Args: []Arg{a("event", KindEvent)}, Returns: "boolean", Combine: "first `true` drops the event", OnError: OnErrorFail},
		{Name: "user_may_join_room", Args: []Arg{a("user_id", KindString), a("room_id", KindString), a("is_invited", KindBool)}, Returns: spamReturn + "; legacy `true` allows, `false` rejects", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "user_may_invite", Args: []Arg{a("inviter", KindString), a("invitee", KindString), a("room_id", KindString)}, Returns: spamReturn + "; legacy booleans", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "federated_user_may_invite", Args: []Arg{a("event", KindEvent)}, Returns: spamReturn, Combine: spamFirst + "; if every module allows, `user_may_invite(sender, state_key, room_id)` is asked next", OnError: OnErrorFail},
		{Name: "user_may_send_3pid_invite", Args: []Arg{a("inviter", KindString), a("medium", KindString), a("address", KindString), a("room_id", KindString)}, Returns: spamReturn + "; legacy booleans", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "user_may_create_room", Args: []Arg{a("user_id", KindString), a("room_config", KindTable)}, Returns: spamReturn + "; legacy booleans", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "user_may_create_room_alias", Args: []Arg{a("user_id", KindString), a("room_alias", KindString)}, Returns: spamReturn + "; legacy booleans", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "user_may_publish_room", Args: []Arg{a("user_id", KindString), a("room_id", KindString)}, Returns: spamReturn + "; legacy booleans", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "user_may_send_state_event", Args: []Arg{a("user_id", KindString), a("room_id", KindString), a("event_type", KindString), a("state_key", KindString), a("content", KindTable)}, Returns: spamReturn + " only (anything else rejects)", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "check_username_for_spam", Args: []Arg{a("user_profile", KindTable), a("requester_id", KindString)}, Returns: "boolean, `true` = spammy (hidden from user-directory search)", Combine: "first `true` wins", OnError: OnErrorFail},
		{Name: "check_registration_for_spam", Args: []Arg{a("email_threepid", KindOptTable), a("username", KindOptStr), a("request_info", KindArray), a("auth_provider_id", KindOptStr)}, Returns: "`api.RegistrationBehaviour.ALLOW`, `SHADOW_BAN` or `DENY`", Combine: "first non-ALLOW wins", OnError: OnErrorFail},
		{Name: "check_media_file_for_spam", Args: []Arg{a("file", KindAny), a("file_info", KindTable)}, Returns: spamReturn + "; legacy `false` allows, `true` rejects", Combine: spamFirst, OnError: OnErrorFail},
		{Name: "check_login_for_spam", Args: []Arg{a("user_id", KindString), a("device_id", KindOptStr), a("initial_display_name", KindOptStr), a("request_info", KindArray), a("auth_provider_id", KindOptStr)}, Returns: spamReturn, Combine: spamFirst, OnError: OnErrorFail},
	}},
	{Name: "third_party_rules", Callbacks: []*Callback{
		{Name: "check_event_allowed", Args: []Arg{a("event", KindEvent), a("state_events", KindState)}, Returns: "`allowed [, replacement_event]`", Combine: "first `false` refuses; first replacement is used at once, later modules skipped", OnError: OnErrorClosed},
		{Name: "on_create_room", Args: []Arg{a("requester", KindTable), a("request_content", KindTable), a("is_requester_admin", KindBool)}, Returns: "nothing; may modify `request_content`", Combine: "all run in order until one raises; changes pass to the next module", OnError: OnErrorFail},
		{Name: "check_threepid_can_be_invited", Args: []Arg{a("medium", KindString), a("address", KindString), a("state_events", KindState)}, Returns: "boolean", Combine: firstFalse, OnError: OnErrorSkip},
		{Name: "check_visibility_can_be_modified", Args: []Arg{a("room_id", KindString), a("state_events", KindState), a("new_visibility", KindString)}, Returns: "boolean", Combine: firstFalse, OnError: OnErrorSkip},
		{Name: "on_new_event", Args: []Arg{a("event", KindEvent), a("state_events", KindState)}, Returns: "nothing", Combine: allRun, OnError: OnErrorSkip, Notify: true},
		{Name: "check_can_shutdown_room", Args: []Arg{a("user_id", KindOptStr), a("room_id", KindString)}, Returns: "boolean", Combine: firstFalse, OnError: OnErrorSkip},
		{Name: "check_can_deactivate_user", Args: []Arg{a("user_id", KindString), a("by_admin", KindBool)}, Returns: "boolean", Combine: firstFalse, OnError: OnErrorSkip},
		{Name: "on_profile_update", Args: []Arg{a("user_id", KindString), a("new_profile", KindTable), a("by_admin", KindBool), a("deactivation", KindBool)}, Returns: "nothing", Combine: allRun, OnError: OnErrorSkip, Notify: true},
		{Name: "on_user_deactivation_status_changed", Args: []Arg{a("user_id", KindString), a("deactivated", KindBool), a("by_admin", KindBool)}, Returns: "nothing", Combine: allRun, OnError: OnErrorSkip, Notify: true},
		{Name: "on_threepid_bind", Args: []Arg{a("user_id", KindString), a("medium", KindString), a("address", KindString)}, Returns: "nothing (deprecated)", Combine: allRun, OnError: OnErrorSkip, Notify: true},
		{Name: "on_add_user_third_party_identifier", Args: []Arg{a("user_id", KindString), a("medium", KindString), a("address", KindString)}, Returns: "nothing", Combine: allRun, OnError: OnErrorSkip, Notify: true},
		{Name: "on_remove_user_third_party_identifier", Args: []Arg{a("user_id", KindString), a("medium", KindString), a("address", KindString)}, Returns: "nothing", Combine: allRun, OnError: OnErrorSkip, Notify: true},
	}},
	{Name: "presence_router", Callbacks: []*Callback{
		{Name: "get_users_for_states", Args: []Arg{a("state_updates", KindArray)}, Returns: "`{[user_id] = {state, ...}}`", Combine: "merged, arrays unioned", OnError: OnErrorSkip},
		{Name: "get_interested_users", Args: []Arg{a("user_id", KindString)}, Returns: "array of user IDs or `api.PRESENCE_ALL_USERS`", Combine: "unioned; `\"ALL\"` from any module wins", OnError: OnErrorSkip},
	}},
	{Name: "account_validity", Callbacks: []*Callback{
		{Name: "is_user_expired", Args: []Arg{a("user_id", KindString)}, Returns: "`true`, `false` or `nil` (no opinion)", Combine: "first non-nil wins; all nil = not expired", OnError: OnErrorFail},
		{Name: "on_user_registration", Args: []Arg{a("user_id", KindString)}, Returns: "nothing", Combine: allRun, OnError: OnErrorFail, Notify: true},
		{Name: "on_user_login", Args: []Arg{a("user_id", KindString), a("auth_provider_type", KindOptStr), a("auth_provider_id", KindOptStr)}, Returns: "nothing", Combine: allRun, OnError: OnErrorFail, Notify: true},
	}},
	{Name: "password_auth_provider", Callbacks: []*Callback{
		{Name: "auth_checkers", Args: []Arg{a("user", KindString), a("login_type", KindString), a("login_dict", KindTable)}, Returns: "`user_id [, on_logged_in]` or nil", Combine: "asked in order until one accepts", OnError: OnErrorSkip},
		{Name: "check_3pid_auth", Args: []Arg{a("medium", KindString), a("address", KindString), a("password", KindString)}, Returns: "`user_id [, on_logged_in]` or nil", Combine: "first acceptance", OnError: OnErrorSkip},
		{Name: "on_logged_out", Args: []Arg{a("user_id", KindString), a("device_id", KindOptStr), a("access_token", KindString)}, Returns: "nothing", Combine: allRun, OnError: OnErrorSkip, Notify: true},
		{Name: "get_username_for_registration", Args: []Arg{a("uia_results", KindTable), a("params", KindTable)}, Returns: "localpart string or nil", Combine: "first string", OnError: OnErrorFail},
		{Name: "get_displayname_for_registration", Args: []Arg{a("uia_results", KindTable), a("params", KindTable)}, Returns: "string or nil", Combine: "first string", OnError: OnErrorFail},
		{Name: "is_3pid_allowed", Args: []Arg{a("medium", KindString), a("address", KindString), a("registration", KindBool)}, Returns: "boolean", Combine: firstFalse, OnError: OnErrorFail},
	}},
	{Name: "background_update_controller", Callbacks: []*Callback{
		{Name: "on_update", Args: []Arg{a("update_name", KindString), a("database_name", KindString), a("one_shot", KindBool)}, Returns: "target duration in ms [, function called when the batch ends]", Combine: "only the first registering module is used", OnError: OnErrorFail},
		{Name: "default_batch_size", Args: []Arg{a("update_name", KindString), a("database_name", KindString)}, Returns: "integer (default 100)", Combine: "only the first registering module is used", OnError: OnErrorFail},
		{Name: "min_batch_size", Args: []Arg{a("update_name", KindString), a("database_name", KindString)}, Returns: "integer ≥ 1 (default 100)", Combine: "only the first registering module is used", OnError: OnErrorFail},
	}},
	{Name: "account_data", Callbacks: []*Callback{
		{Name: "on_account_data_updated", Args: []Arg{a("user_id", KindString), a("room_id", KindOptStr), a("account_data_type", KindString), a("content", KindTable)}, Returns: "nothing", Combine: allRun, OnError: OnErrorSkip, Notify: true},
	}},
	{Name: "add_extra_fields_to_unsigned_client_event", Callbacks: []*Callback{
		{Name: "add_field_to_unsigned_callback", Args: []Arg{a("event", KindEvent)}, Returns: "a table of fields", Combine: "merged; the last registered wins on a clash; existing `unsigned` fields are never overwritten", OnError: OnErrorFail},
	}},
	{Name: "media_repository", Callbacks: []*Callback{
		{Name: "get_media_config_for_user", Args: []Arg{a("user_id", KindString)}, Returns: "table (the /media/config body) or nil", Combine: "first non-nil", OnError: OnErrorFail},
		{Name: "is_user_allowed_to_upload_media_of_size", Args: []Arg{a("user_id", KindString), a("size", KindNumber)}, Returns: "boolean", Combine: "first `false` refuses (413 M_TOO_LARGE)", OnError: OnErrorFail},
		{Name: "get_media_upload_limits_for_user", Args: []Arg{a("user_id", KindString)}, Returns: "array of `{max_bytes, time_period_ms}` or nil", Combine: "first non-nil, sorted by time_period_ms descending", OnError: OnErrorFail},
		{Name: "on_media_upload_limit_exceeded", Args: []Arg{a("user_id", KindString), a("limit", KindTable), a("sent_bytes", KindNumber), a("attempted_bytes", KindNumber)}, Returns: "nothing", Combine: allRun, OnError: OnErrorFail, Notify: true},
	}},
	{Name: "ratelimit", Callbacks: []*Callback{
		{Name: "get_ratelimit_override_for_user", Args: []Arg{a("user_id", KindString), a("limiter_name", KindString)}, Returns: "`{per_second=, burst_count=}` or nil", Combine: "first non-nil wins", OnError: OnErrorFail},
	}},
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
		ids := make([]string, 0, len(byID))
		for id := range byID {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return nil, fmt.Errorf("unknown callback %q (known: %s)", name, strings.Join(ids, ", "))
	default:
		return nil, fmt.Errorf("callback name %q is ambiguous: use category.name", name)
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
