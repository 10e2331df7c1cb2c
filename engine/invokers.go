package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/luaapi"
)

// Combine rules for every callback (shared/design/callbacks.md). walk is
// the one loop; the typed invokers below say what a module's answer
// means and when to stop.

// errClosedPolicy marks an error that the callback's policy (or the
// module's on_error: deny) turns into a refusal.
type closedError struct{ err error }

func (c closedError) Error() string { return c.err.Error() }
func (c closedError) Unwrap() error { return c.err }

// walk calls every module that registered cb, in config order. visit runs
// on the module's loop goroutine with its results and reports whether to
// stop. A script error follows the callback's error policy: skip (log,
// next module), closed (return a closedError: the caller refuses) or fail
// (return the error).
func (e *Engine) walk(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue,
	visit func(L *lua.LState, b binding, rets []lua.LValue) (stop bool)) error {
	snap := e.acquire()
	defer snap.release()
	for _, b := range snap.callbacks[cb] {
		stop := false
		err := e.invokeBinding(ctx, b, args, func(L *lua.LState, rets []lua.LValue) error {
			if visit != nil {
				stop = visit(L, b, rets)
			}
			return nil
		})
		if err != nil {
			policy := cb.OnError
			if b.gen.denyOnError() && !cb.Notify { // nothing to deny in a notification
				policy = luaapi.OnErrorClosed
			}
			switch policy {
			case luaapi.OnErrorSkip:
				e.logScriptError(cb.Name+" failed; ignoring this module's answer", err)
				continue
			case luaapi.OnErrorClosed:
				e.logScriptError(cb.Name+" failed; refusing", err)
				return closedError{err}
			default:
				e.logScriptError(cb.Name+" failed", err)
				return err
			}
		}
		if stop {
			return nil
		}
	}
	return nil
}

func isClosed(err error) bool {
	var c closedError
	return errors.As(err, &c)
}

// argsOf converts Go arguments on the loop goroutine.
func argsOf(vs ...any) func(*lua.LState) []lua.LValue { return luaArgs(vs) }

func (e *Engine) cb(id string) *luaapi.Callback { return luaapi.MustCallback(id) }

// boolRule: every module answers a boolean; the first answer equal to
// stopOn wins, otherwise def. A non-boolean answer counts as stopOn when
// failClosed (a check that must not pass on garbage).
func (e *Engine) boolRule(ctx context.Context, id string, stopOn, def bool, args ...any) (bool, error) {
	result := def
	err := e.walk(ctx, e.cb(id), argsOf(args...), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		v, ok := first(rets).(lua.LBool)
		if !ok {
			if first(rets) == lua.LNil {
				return false // no opinion (Synapse only acts on a real boolean)
			}
			// Garbage fails closed: the answer that refuses.
			refusal := lua.LBool(!def)
			e.log.Warn("callback should return a boolean; treating as "+fmt.Sprint(bool(refusal)), "module", b.gen.cfg.Name,
				"callback", id, "returned", luaToString(L, first(rets)))
			v = refusal
		}
		if bool(v) == stopOn {
			result = stopOn
			return true
		}
		return false
	})
	if isClosed(err) {
		return stopOn && !def, nil // a refusal
	}
	return result, err
}

// notify runs every module's notification callback; answers are ignored.
func (e *Engine) notify(ctx context.Context, id string, args ...any) error {
	err := e.walk(ctx, e.cb(id), argsOf(args...), nil)
	if isClosed(err) {
		return nil
	}
	return err
}

// firstValue returns the first non-nil answer, converted to Go.
func (e *Engine) firstValue(ctx context.Context, id string, args ...any) (any, error) {
	var out any
	err := e.walk(ctx, e.cb(id), argsOf(args...), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		v := first(rets)
		if v == lua.LNil {
			return false
		}
		out, _ = fromLua(L, v)
		return true
	})
	return out, err
}

// ---- spam_checker ----

// ShouldDropFederatedEvent: the first module answering true drops it.
func (e *Engine) ShouldDropFederatedEvent(ctx context.Context, ev *Event) (bool, error) {
	return e.boolRule(ctx, "spam_checker.should_drop_federated_event", true, false, ev)
}

// UserMayJoinRoom asks the spam checkers whether a user may join a room.
func (e *Engine) UserMayJoinRoom(ctx context.Context, userID, roomID string, isInvited bool) (SpamDecision, error) {
	return e.spamCheck(ctx, e.cb("spam_checker.user_may_join_room"), argsOf(userID, roomID, isInvited))
}

// UserMayInvite asks whether inviter may invite invitee into a room.
func (e *Engine) UserMayInvite(ctx context.Context, inviter, invitee, roomID string) (SpamDecision, error) {
	return e.spamCheck(ctx, e.cb("spam_checker.user_may_invite"), argsOf(inviter, invitee, roomID))
}

// FederatedUserMayInvite asks about an invite from another server; when
// every module allows it, user_may_invite(sender, state_key, room_id) is
// asked next, as Synapse does.
func (e *Engine) FederatedUserMayInvite(ctx context.Context, ev *Event) (SpamDecision, error) {
	d, err := e.spamCheck(ctx, e.cb("spam_checker.federated_user_may_invite"), argsOf(ev))
	if err != nil || !d.Allowed() {
		return d, err
	}
	target := ""
	if ev.StateKey != nil {
		target = *ev.StateKey
	}
	return e.UserMayInvite(ctx, ev.Sender, target, ev.RoomID)
}

// UserMaySend3PIDInvite asks whether a third-party invite may be sent.
func (e *Engine) UserMaySend3PIDInvite(ctx context.Context, inviter, medium, address, roomID string) (SpamDecision, error) {
	return e.spamCheck(ctx, e.cb("spam_checker.user_may_send_3pid_invite"), argsOf(inviter, medium, address, roomID))
}

// UserMayCreateRoom asks whether a user may create a room with this config.
func (e *Engine) UserMayCreateRoom(ctx context.Context, userID string, roomConfig map[string]any) (SpamDecision, error) {
	return e.spamCheck(ctx, e.cb("spam_checker.user_may_create_room"), argsOf(userID, roomConfig))
}

// UserMayCreateRoomAlias asks whether a user may create an alias.
func (e *Engine) UserMayCreateRoomAlias(ctx context.Context, userID, alias string) (SpamDecision, error) {
	return e.spamCheck(ctx, e.cb("spam_checker.user_may_create_room_alias"), argsOf(userID, alias))
}

// UserMayPublishRoom asks whether a user may publish a room to the directory.
func (e *Engine) UserMayPublishRoom(ctx context.Context, userID, roomID string) (SpamDecision, error) {
	return e.spamCheck(ctx, e.cb("spam_checker.user_may_publish_room"), argsOf(userID, roomID))
}

// UserMaySendStateEvent asks whether a user may send a state event.
func (e *Engine) UserMaySendStateEvent(ctx context.Context, userID, roomID, eventType, stateKey string, content map[string]any) (SpamDecision, error) {
	return e.spamCheck(ctx, e.cb("spam_checker.user_may_send_state_event"), argsOf(userID, roomID, eventType, stateKey, content))
}

// CheckUsernameForSpam: true hides the user from user-directory search.
func (e *Engine) CheckUsernameForSpam(ctx context.Context, profile map[string]any, requesterID string) (bool, error) {
	return e.boolRule(ctx, "spam_checker.check_username_for_spam", true, false, profile, requesterID)
}

// RegistrationBehaviour is check_registration_for_spam's answer.
type RegistrationBehaviour string

const (
	RegistrationAllow     RegistrationBehaviour = "allow"
	RegistrationShadowBan RegistrationBehaviour = "shadow_ban"
	RegistrationDeny      RegistrationBehaviour = "deny"
)

// CheckRegistrationForSpam: the first answer other than allow wins.
// emailThreepid, username and authProviderID may be nil/"".
func (e *Engine) CheckRegistrationForSpam(ctx context.Context, emailThreepid map[string]any, username string, requestInfo []map[string]any, authProviderID string) (RegistrationBehaviour, error) {
	info := make([]any, len(requestInfo))
	for i, r := range requestInfo {
		info[i] = r
	}
	return e.checkRegistration(ctx, []any{nilIfEmptyMap(emailThreepid), nilIfEmpty(username), info, nilIfEmpty(authProviderID)})
}

func (e *Engine) checkRegistration(ctx context.Context, args []any) (RegistrationBehaviour, error) {
	result := RegistrationAllow
	err := e.walk(ctx, e.cb("spam_checker.check_registration_for_spam"), luaArgs(args), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		s, _ := first(rets).(lua.LString)
		switch RegistrationBehaviour(s) {
		case RegistrationAllow:
			return false
		case RegistrationShadowBan, RegistrationDeny:
			result = RegistrationBehaviour(s)
			return true
		}
		e.log.Warn("check_registration_for_spam should return api.RegistrationBehaviour.ALLOW, SHADOW_BAN or DENY; denying",
			"module", b.gen.cfg.Name, "returned", luaToString(L, first(rets)))
		result = RegistrationDeny
		return true
	})
	if isClosed(err) {
		return RegistrationDeny, nil
	}
	return result, err
}

// CheckMediaFileForSpam asks about an uploaded file; read returns its
// bytes when the script calls file:read().
func (e *Engine) CheckMediaFileForSpam(ctx context.Context, read func() ([]byte, error), fileInfo map[string]any) (SpamDecision, error) {
	return e.spamCheck(ctx, e.cb("spam_checker.check_media_file_for_spam"), func(L *lua.LState) []lua.LValue {
		return []lua.LValue{mediaFile(L, read), luaapi.ToLua(L, fileInfo)}
	})
}

// mediaFile is the `file` argument: file:read() returns the bytes.
func mediaFile(L *lua.LState, read func() ([]byte, error)) lua.LValue {
	t := L.NewTable()
	t.RawSetString("read", L.NewFunction(func(L *lua.LState) int {
		if read == nil {
			L.Push(lua.LString(""))
			return 1
		}
		b, err := read()
		if err != nil {
			L.RaiseError("file:read(): %v", err)
		}
		L.Push(lua.LString(b))
		return 1
	}))
	return t
}

// CheckLoginForSpam asks whether a login may proceed.
func (e *Engine) CheckLoginForSpam(ctx context.Context, userID, deviceID, initialDisplayName string, requestInfo []map[string]any, authProviderID string) (SpamDecision, error) {
	info := make([]any, len(requestInfo))
	for i, r := range requestInfo {
		info[i] = r
	}
	return e.spamCheck(ctx, e.cb("spam_checker.check_login_for_spam"),
		argsOf(userID, nilIfEmpty(deviceID), nilIfEmpty(initialDisplayName), info, nilIfEmpty(authProviderID)))
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nilIfEmptyMap(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

// ---- third_party_rules ----

// CheckEventAllowed asks whether an event may be sent. The first module
// answering false refuses it; the first returning a replacement event has
// it used at once (later modules are skipped). A SynapseError the script
// raises comes back as the error; other script errors refuse the event.
func (e *Engine) CheckEventAllowed(ctx context.Context, ev *Event, state StateMap) (allowed bool, replacement *Event, err error) {
	allowed = true
	var convErr error
	err = e.walk(ctx, e.cb("third_party_rules.check_event_allowed"), func(L *lua.LState) []lua.LValue {
		return []lua.LValue{luaapi.PushEvent(L, ev), luaapi.PushState(L, state)}
	}, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		v := first(rets)
		var repl lua.LValue = lua.LNil
		if len(rets) > 1 {
			repl = rets[1]
		}
		if t, ok := v.(*lua.LTable); ok { // legacy: a table alone is a replacement
			v, repl = lua.LTrue, t
		}
		switch v {
		case lua.LFalse:
			allowed = false
			return true
		case lua.LTrue:
		default:
			e.log.Warn("check_event_allowed should return true or false [, replacement]; refusing",
				"module", b.gen.cfg.Name, "returned", luaToString(L, v))
			allowed = false
			return true
		}
		if repl != lua.LNil {
			replacement, convErr = luaapi.EventFromLua(L, repl)
			return true
		}
		return false
	})
	if err != nil {
		var se *luaapi.SynapseError
		if errors.As(err, &se) {
			return false, nil, se
		}
		if isClosed(err) {
			return false, nil, nil
		}
		return false, nil, err
	}
	if convErr != nil {
		return false, nil, fmt.Errorf("check_event_allowed: replacement event: %w", convErr)
	}
	return allowed, replacement, nil
}

// CheckEventAllowedResult is check_event_allowed's answer for `luahost call`.
type CheckEventAllowedResult struct {
	Allowed     bool
	Replacement *Event
}

// MarshalJSON prints [allowed, replacement-or-null].
func (r CheckEventAllowedResult) MarshalJSON() ([]byte, error) {
	return jsonMarshal([]any{r.Allowed, r.Replacement})
}

// ErrRoomCreationForbidden is on_create_room's refusal when a script
// raised something other than a SynapseError.
var ErrRoomCreationForbidden = &luaapi.SynapseError{Code: 403, Errcode: "M_FORBIDDEN", Msg: "Room creation forbidden with these parameters"}

// OnCreateRoom runs every module's on_create_room in order; each may
// change the request content, which the next module and the host see. A
// raise denies: a SynapseError as is, anything else as 403.
func (e *Engine) OnCreateRoom(ctx context.Context, requester *Requester, content map[string]any, isAdmin bool) (map[string]any, error) {
	cur := content
	snap := e.acquire()
	defer snap.release()
	for _, b := range snap.callbacks[e.cb("third_party_rules.on_create_room")] {
		var tbl lua.LValue
		err := e.invokeBinding(ctx, b, func(L *lua.LState) []lua.LValue {
			tbl = luaapi.ToLua(L, cur)
			if tbl == lua.LNil {
				tbl = L.NewTable()
			}
			return []lua.LValue{luaapi.ToLua(L, requester), tbl, lua.LBool(isAdmin)}
		}, func(L *lua.LState, rets []lua.LValue) error {
			m, err := fromLua(L, tbl)
			if err != nil {
				return fmt.Errorf("request_content is no longer JSON: %w", err)
			}
			cur, _ = m.(map[string]any)
			return nil
		})
		if err != nil {
			var se *luaapi.SynapseError
			if errors.As(err, &se) {
				return nil, se
			}
			e.logScriptError("on_create_room failed; refusing room creation", err)
			return nil, ErrRoomCreationForbidden
		}
	}
	return cur, nil
}

// CheckThreepidCanBeInvited: the first false denies.
func (e *Engine) CheckThreepidCanBeInvited(ctx context.Context, medium, address string, state StateMap) (bool, error) {
	return e.boolRule(ctx, "third_party_rules.check_threepid_can_be_invited", false, true, medium, address, state)
}

// CheckVisibilityCanBeModified: the first false denies.
func (e *Engine) CheckVisibilityCanBeModified(ctx context.Context, roomID string, state StateMap, newVisibility string) (bool, error) {
	return e.boolRule(ctx, "third_party_rules.check_visibility_can_be_modified", false, true, roomID, state, newVisibility)
}

// CheckCanShutdownRoom: the first false refuses (403). userID may be "".
func (e *Engine) CheckCanShutdownRoom(ctx context.Context, userID, roomID string) (bool, error) {
	return e.boolRule(ctx, "third_party_rules.check_can_shutdown_room", false, true, nilIfEmpty(userID), roomID)
}

// CheckCanDeactivateUser: the first false refuses (403).
func (e *Engine) CheckCanDeactivateUser(ctx context.Context, userID string, byAdmin bool) (bool, error) {
	return e.boolRule(ctx, "third_party_rules.check_can_deactivate_user", false, true, userID, byAdmin)
}

// OnNewEvent notifies every module of a new event and waits.
func (e *Engine) OnNewEvent(ctx context.Context, ev *Event, state StateMap) error {
	return e.notify(ctx, "third_party_rules.on_new_event", ev, state)
}

// OnProfileUpdate notifies every module of a profile change.
func (e *Engine) OnProfileUpdate(ctx context.Context, userID string, p Profile, byAdmin, deactivation bool) error {
	return e.notify(ctx, "third_party_rules.on_profile_update", userID, map[string]any{"display_name": nilIfEmpty(p.DisplayName), "avatar_url": nilIfEmpty(p.AvatarURL)}, byAdmin, deactivation)
}

// OnUserDeactivationStatusChanged notifies every module.
func (e *Engine) OnUserDeactivationStatusChanged(ctx context.Context, userID string, deactivated, byAdmin bool) error {
	return e.notify(ctx, "third_party_rules.on_user_deactivation_status_changed", userID, deactivated, byAdmin)
}

// OnThreepidBind notifies every module (deprecated in Synapse).
func (e *Engine) OnThreepidBind(ctx context.Context, userID, medium, address string) error {
	return e.notify(ctx, "third_party_rules.on_threepid_bind", userID, medium, address)
}

// OnAddUserThirdPartyIdentifier notifies every module.
func (e *Engine) OnAddUserThirdPartyIdentifier(ctx context.Context, userID, medium, address string) error {
	return e.notify(ctx, "third_party_rules.on_add_user_third_party_identifier", userID, medium, address)
}

// OnRemoveUserThirdPartyIdentifier notifies every module.
func (e *Engine) OnRemoveUserThirdPartyIdentifier(ctx context.Context, userID, medium, address string) error {
	return e.notify(ctx, "third_party_rules.on_remove_user_third_party_identifier", userID, medium, address)
}

// ---- presence_router ----

// GetUsersForStates merges every router's answer: user ID -> presence
// states to send them (arrays unioned).
func (e *Engine) GetUsersForStates(ctx context.Context, updates []PresenceState) (map[string][]map[string]any, error) {
	out := map[string][]map[string]any{}
	seen := map[string]map[string]bool{}
	upd := make([]any, len(updates))
	for i, u := range updates {
		upd[i] = u
	}
	err := e.walk(ctx, e.cb("presence_router.get_users_for_states"), argsOf(upd), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		t, ok := first(rets).(*lua.LTable)
		if !ok {
			return false
		}
		t.ForEach(func(k, v lua.LValue) {
			user := lua.LVAsString(k)
			list, _ := fromLua(L, v)
			arr, _ := list.([]any)
			for _, st := range arr {
				m, ok := st.(map[string]any)
				if !ok {
					continue
				}
				key := fmt.Sprint(m["user_id"], "|", m["state"], "|", m["status_msg"])
				if seen[user] == nil {
					seen[user] = map[string]bool{}
				}
				if !seen[user][key] {
					seen[user][key] = true
					out[user] = append(out[user], m)
				}
			}
		})
		return false
	})
	if isClosed(err) {
		err = nil
	}
	return out, err
}

// InterestedUsers is get_interested_users' combined answer: All, or a set.
type InterestedUsers struct {
	All   bool
	Users []string
}

// MarshalJSON prints "ALL" or the array of user IDs.
func (u InterestedUsers) MarshalJSON() ([]byte, error) {
	if u.All {
		return []byte(`"ALL"`), nil
	}
	if u.Users == nil {
		return []byte("[]"), nil
	}
	return jsonMarshal(u.Users)
}

// GetInterestedUsers unions every router's answer; "ALL" from any wins.
func (e *Engine) GetInterestedUsers(ctx context.Context, userID string) (InterestedUsers, error) {
	var res InterestedUsers
	seen := map[string]bool{}
	err := e.walk(ctx, e.cb("presence_router.get_interested_users"), argsOf(userID), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		switch v := first(rets).(type) {
		case lua.LString:
			if v == "ALL" {
				res.All = true
				return true
			}
		case *lua.LTable:
			v.ForEach(func(_, u lua.LValue) {
				s := lua.LVAsString(u)
				if s != "" && !seen[s] {
					seen[s] = true
					res.Users = append(res.Users, s)
				}
			})
		}
		return false
	})
	if isClosed(err) {
		err = nil
	}
	if res.All {
		res.Users = nil
	}
	return res, err
}

// ---- account_validity ----

// IsUserExpired: the first module with an opinion decides; decided is
// false when none had one (the host applies its own rule).
func (e *Engine) IsUserExpired(ctx context.Context, userID string) (expired, decided bool, err error) {
	err = e.walk(ctx, e.cb("account_validity.is_user_expired"), argsOf(userID), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if v, ok := first(rets).(lua.LBool); ok {
			expired, decided = bool(v), true
			return true
		}
		return false
	})
	if isClosed(err) {
		return true, true, nil
	}
	return expired, decided, err
}

// OnUserRegistration notifies every module.
func (e *Engine) OnUserRegistration(ctx context.Context, userID string) error {
	return e.notify(ctx, "account_validity.on_user_registration", userID)
}

// OnUserLogin notifies every module.
func (e *Engine) OnUserLogin(ctx context.Context, userID, authProviderType, authProviderID string) error {
	return e.notify(ctx, "account_validity.on_user_login", userID, nilIfEmpty(authProviderType), nilIfEmpty(authProviderID))
}

// ---- password_auth_provider ----

// AuthResult is an accepted login.
type AuthResult struct {
	UserID string
	// onLoggedIn is the module's optional callback for the login response.
	gen        *generation
	onLoggedIn *lua.LFunction
}

// MarshalJSON prints [user_id].
func (r *AuthResult) MarshalJSON() ([]byte, error) { return jsonMarshal([]string{r.UserID}) }

// LoggedIn passes the login response ({user_id, access_token, device_id,
// home_server, ...}) to the module's on_logged_in callback, if it gave one.
func (r *AuthResult) LoggedIn(ctx context.Context, response map[string]any) error {
	if r == nil || r.onLoggedIn == nil {
		return nil
	}
	return r.gen.rt.invoke(ctx, call{what: "on_logged_in", fn: r.onLoggedIn, args: argsOf(response), timeout: r.gen.cfg.Timeout})
}

// LoginTypes lists the login types modules support, with their fields.
func (e *Engine) LoginTypes() map[string][]string {
	out := map[string][]string{}
	for _, b := range e.snap.Load().callbacks[e.cb("password_auth_provider.auth_checkers")] {
		if _, ok := out[b.reg.LoginType]; !ok {
			out[b.reg.LoginType] = b.reg.Fields
		}
	}
	return out
}

// CheckAuth asks the auth checkers for loginType in order until one
// accepts; nil means none did. loginDict is cut to the declared fields.
func (e *Engine) CheckAuth(ctx context.Context, user, loginType string, loginDict map[string]any) (*AuthResult, error) {
	cb := e.cb("password_auth_provider.auth_checkers")
	snap := e.acquire()
	defer snap.release()
	for _, b := range snap.callbacks[cb] {
		if b.reg.LoginType != loginType {
			continue
		}
		fields := map[string]any{}
		for _, f := range b.reg.Fields {
			if v, ok := loginDict[f]; ok {
				fields[f] = v
			}
		}
		var res *AuthResult
		err := e.invokeBinding(ctx, binding{gen: b.gen, reg: b.reg}, argsOf(user, loginType, fields), func(L *lua.LState, rets []lua.LValue) error {
			res = readAuth(b, rets)
			return nil
		})
		if err != nil {
			e.logScriptError("auth checker failed; asking the next one", err)
			continue
		}
		if res != nil {
			return res, nil
		}
	}
	return nil, nil
}

func readAuth(b binding, rets []lua.LValue) *AuthResult {
	s, ok := first(rets).(lua.LString)
	if !ok || s == "" {
		return nil
	}
	r := &AuthResult{UserID: string(s), gen: b.gen}
	if len(rets) > 1 {
		r.onLoggedIn, _ = rets[1].(*lua.LFunction)
	}
	return r
}

// Check3PIDAuth asks check_3pid_auth in order until one accepts.
func (e *Engine) Check3PIDAuth(ctx context.Context, medium, address, password string) (*AuthResult, error) {
	var res *AuthResult
	err := e.walk(ctx, e.cb("password_auth_provider.check_3pid_auth"), argsOf(medium, address, password), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		res = readAuth(b, rets)
		return res != nil
	})
	if isClosed(err) {
		err = nil
	}
	return res, err
}

// OnLoggedOut notifies every module.
func (e *Engine) OnLoggedOut(ctx context.Context, userID, deviceID, accessToken string) error {
	return e.notify(ctx, "password_auth_provider.on_logged_out", userID, nilIfEmpty(deviceID), accessToken)
}

func (e *Engine) firstString(ctx context.Context, id string, args ...any) (string, bool, error) {
	var out string
	var found bool
	err := e.walk(ctx, e.cb(id), argsOf(args...), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if s, ok := first(rets).(lua.LString); ok {
			out, found = string(s), true
			return true
		}
		return false
	})
	return out, found, err
}

// GetUsernameForRegistration: the first string answer is the localpart.
func (e *Engine) GetUsernameForRegistration(ctx context.Context, uiaResults, params map[string]any) (string, bool, error) {
	return e.firstString(ctx, "password_auth_provider.get_username_for_registration", uiaResults, params)
}

// GetDisplaynameForRegistration: the first string answer is the name.
func (e *Engine) GetDisplaynameForRegistration(ctx context.Context, uiaResults, params map[string]any) (string, bool, error) {
	return e.firstString(ctx, "password_auth_provider.get_displayname_for_registration", uiaResults, params)
}

// Is3PIDAllowed: the first false denies.
func (e *Engine) Is3PIDAllowed(ctx context.Context, medium, address string, registration bool) (bool, error) {
	return e.boolRule(ctx, "password_auth_provider.is_3pid_allowed", false, true, medium, address, registration)
}

// ---- background_update_controller ----

// UpdateBatch is on_update's answer: how long the next batch should take,
// and the module's function to call when it ends.
type UpdateBatch struct {
	DurationMS float64
	gen        *generation
	done       *lua.LFunction
}

// MarshalJSON prints the target duration in ms.
func (u *UpdateBatch) MarshalJSON() ([]byte, error) { return jsonMarshal(u.DurationMS) }

// Done tells the module the batch ended (its optional second return).
func (u *UpdateBatch) Done(ctx context.Context) error {
	if u == nil || u.done == nil {
		return nil
	}
	return u.gen.rt.invoke(ctx, call{what: "on_update (batch end)", fn: u.done, args: noArgs, timeout: u.gen.cfg.Timeout})
}

// OnUpdate asks the controller (only the first registering module) for
// the next batch's target duration; nil when no module controls updates.
func (e *Engine) OnUpdate(ctx context.Context, updateName, databaseName string, oneShot bool) (*UpdateBatch, error) {
	var res *UpdateBatch
	err := e.walk(ctx, e.cb("background_update_controller.on_update"), argsOf(updateName, databaseName, oneShot), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		n, ok := first(rets).(lua.LNumber)
		if !ok {
			return true
		}
		res = &UpdateBatch{DurationMS: float64(n), gen: b.gen}
		if len(rets) > 1 {
			res.done, _ = rets[1].(*lua.LFunction)
		}
		return true
	})
	return res, err
}

func (e *Engine) batchSize(ctx context.Context, id, updateName, databaseName string) (int, error) {
	size := 100
	err := e.walk(ctx, e.cb(id), argsOf(updateName, databaseName), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if n, ok := first(rets).(lua.LNumber); ok && n >= 1 {
			size = int(n)
		}
		return true
	})
	return size, err
}

// DefaultBatchSize is the controller's first batch size (default 100).
func (e *Engine) DefaultBatchSize(ctx context.Context, updateName, databaseName string) (int, error) {
	return e.batchSize(ctx, "background_update_controller.default_batch_size", updateName, databaseName)
}

// MinBatchSize is the controller's smallest batch size (default 100, ≥ 1).
func (e *Engine) MinBatchSize(ctx context.Context, updateName, databaseName string) (int, error) {
	return e.batchSize(ctx, "background_update_controller.min_batch_size", updateName, databaseName)
}

// ---- account_data ----

// OnAccountDataUpdated notifies every module (roomID "" for global data;
// an empty content is a deletion).
func (e *Engine) OnAccountDataUpdated(ctx context.Context, userID, roomID, dataType string, content map[string]any) error {
	if content == nil {
		content = map[string]any{}
	}
	return e.notify(ctx, "account_data.on_account_data_updated", userID, nilIfEmpty(roomID), dataType, content)
}

// ---- add_extra_fields_to_unsigned_client_event ----

// AddFieldsToUnsigned merges every module's fields for an event's
// unsigned section: the last registered module wins on a clash, and fields
// the event's unsigned already has are never overwritten.
func (e *Engine) AddFieldsToUnsigned(ctx context.Context, ev *Event) (map[string]any, error) {
	out := map[string]any{}
	err := e.walk(ctx, e.cb("add_extra_fields_to_unsigned_client_event.add_field_to_unsigned_callback"), argsOf(ev), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if t, ok := first(rets).(*lua.LTable); ok {
			m, _ := fromLua(L, t)
			if mm, ok := m.(map[string]any); ok {
				for k, v := range mm {
					out[k] = v
				}
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	for k := range ev.Unsigned {
		delete(out, k)
	}
	return out, nil
}

// ---- media_repository ----

// GetMediaConfigForUser: the first non-nil table is the /media/config body.
func (e *Engine) GetMediaConfigForUser(ctx context.Context, userID string) (map[string]any, error) {
	v, err := e.firstValue(ctx, "media_repository.get_media_config_for_user", userID)
	m, _ := v.(map[string]any)
	return m, err
}

// IsUserAllowedToUploadMediaOfSize: the first false refuses (413 M_TOO_LARGE).
func (e *Engine) IsUserAllowedToUploadMediaOfSize(ctx context.Context, userID string, size int64) (bool, error) {
	return e.boolRule(ctx, "media_repository.is_user_allowed_to_upload_media_of_size", false, true, userID, size)
}

// MediaUploadLimit is one upload limit.
type MediaUploadLimit struct {
	MaxBytes     int64 `json:"max_bytes"`
	TimePeriodMS int64 `json:"time_period_ms"`
}

// GetMediaUploadLimitsForUser: the first non-nil answer, sorted by period
// descending; nil when no module answered (an empty list is unlimited).
func (e *Engine) GetMediaUploadLimitsForUser(ctx context.Context, userID string) ([]MediaUploadLimit, error) {
	v, err := e.firstValue(ctx, "media_repository.get_media_upload_limits_for_user", userID)
	if err != nil || v == nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("get_media_upload_limits_for_user must return an array of {max_bytes=, time_period_ms=} or nil")
	}
	limits := []MediaUploadLimit{}
	for _, it := range arr {
		if m, ok := it.(map[string]any); ok {
			mb, _ := m["max_bytes"].(float64)
			tp, _ := m["time_period_ms"].(float64)
			limits = append(limits, MediaUploadLimit{MaxBytes: int64(mb), TimePeriodMS: int64(tp)})
		}
	}
	sort.SliceStable(limits, func(i, j int) bool { return limits[i].TimePeriodMS > limits[j].TimePeriodMS })
	return limits, nil
}

// OnMediaUploadLimitExceeded notifies every module.
func (e *Engine) OnMediaUploadLimitExceeded(ctx context.Context, userID string, limit MediaUploadLimit, sentBytes, attemptedBytes int64) error {
	return e.notify(ctx, "media_repository.on_media_upload_limit_exceeded", userID, limit, sentBytes, attemptedBytes)
}

// ---- ratelimit ----

// RatelimitOverride is a per-user rate limit.
type RatelimitOverride struct {
	PerSecond  float64 `json:"per_second"`
	BurstCount float64 `json:"burst_count"`
}

// GetRatelimitOverrideForUser: the first non-nil answer wins.
func (e *Engine) GetRatelimitOverrideForUser(ctx context.Context, userID, limiterName string) (*RatelimitOverride, error) {
	v, err := e.firstValue(ctx, "ratelimit.get_ratelimit_override_for_user", userID, limiterName)
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("get_ratelimit_override_for_user must return {per_second=, burst_count=} or nil")
	}
	ps, _ := m["per_second"].(float64)
	bc, _ := m["burst_count"].(float64)
	return &RatelimitOverride{PerSecond: ps, BurstCount: bc}, nil
}
