package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// The combine rules (shared/design/callbacks.md), one function each. The
// generated invokers (invokers_gen.go) call them; walk is the one loop
// they share, and the one place a module's error policy (and its
// on_error: deny) is applied.

// walk calls every module bound to cb, in config order. visit reads one
// module's answer (with the module's state in hand) and reports whether
// to stop. A module's error follows the callback's policy: skip (log, ask
// the next module), closed (refused: the walk stops, refused holds the
// module's error and the rule answers its refusal) or fail (err is the
// module's error). A module with on_error: deny turns every check's error
// into a refusal; notifications have nothing to refuse.
func (e *Engine) walk(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue,
	visit func(L *lua.LState, b binding, rets []lua.LValue) (stop bool)) (refused, err error) {
	snap := e.acquire()
	defer snap.release()
	for _, b := range snap.callbacks[cb] {
		stop := false
		c := b.gen.callOf(b.idx, cb.Name, args, func(L *lua.LState, rets []lua.LValue) error {
			if visit != nil {
				stop = visit(L, b, rets)
			}
			return nil
		})
		inst := 0
		if cb.Notify() {
			inst = 1 // notifications go to instance 1
		}
		pol := policy(cb, b.gen)
		err := e.call(ctx, b.gen, inst, cb, pol == luaapi.OnErrorClosed, c)
		if err != nil {
			switch pol {
			case luaapi.OnErrorSkip:
				e.logScriptError(cb.Name+" failed; ignoring this module's answer", err)
				continue
			case luaapi.OnErrorClosed:
				e.logScriptError(cb.Name+" failed; refusing", err)
				return err, nil
			default:
				e.logScriptError(cb.Name+" failed", err)
				return nil, e.redactErr(err)
			}
		}
		if stop {
			return nil, nil
		}
	}
	return nil, nil
}

func policy(cb *luaapi.Callback, g *generation) luaapi.ErrorPolicy {
	if g.cfg.OnError == "deny" && !cb.Notify() {
		return luaapi.OnErrorClosed
	}
	return cb.OnError
}

// argsOf converts Go arguments with the state in hand.
func argsOf(vs ...any) func(*lua.LState) []lua.LValue {
	return func(L *lua.LState) []lua.LValue {
		out := make([]lua.LValue, len(vs))
		for i, v := range vs {
			out[i] = toLua(L, v)
		}
		return out
	}
}

func first(vs []lua.LValue) lua.LValue {
	if len(vs) == 0 {
		return lua.LNil
	}
	return vs[0]
}

func (e *Engine) warnReturn(L *lua.LState, b binding, want string, got lua.LValue) {
	e.log.Warn(b.reg.Callback.Name+" should return "+want, "module", b.gen.cfg.Name,
		"returned", runtime.ToString(L, got))
}

// ---- spam ----

var forbidden = SpamDecision{Errcode: "M_FORBIDDEN"}

func (e *Engine) spam(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (SpamDecision, error) {
	d := NotSpam
	refused, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		d = e.readSpam(L, b, rets)
		return !d.Allowed()
	})
	switch {
	case err != nil:
		return NotSpam, err
	case refused != nil:
		d = forbidden
	}
	if !d.Allowed() {
		d.deny = cb.Deny
	}
	return d, nil
}

func (e *Engine) readSpam(L *lua.LState, b binding, rets []lua.LValue) SpamDecision {
	mode := b.reg.Callback.Legacy
	switch v := first(rets).(type) {
	case lua.LString:
		s := string(v)
		if s == "NOT_SPAM" {
			return NotSpam
		}
		if luaapi.IsErrCode(s) {
			d := SpamDecision{Errcode: s}
			if len(rets) > 1 {
				if t, ok := rets[1].(*lua.LTable); ok {
					if m, err := stdlib.FromLua(L, t); err == nil {
						d.Extra, _ = m.(map[string]any)
					}
				}
			}
			return d
		}
		if mode == luaapi.LegacyTrueSpam {
			return SpamDecision{Errcode: "M_FORBIDDEN", Msg: s} // legacy: the string is the message
		}
	case lua.LBool:
		switch {
		case mode == luaapi.LegacyTrueSpam && !bool(v), mode == luaapi.LegacyTrueAllow && bool(v):
			return NotSpam
		case mode != luaapi.LegacyNone:
			return forbidden
		}
	}
	e.warnReturn(L, b, "api.NOT_SPAM or an errcode; rejecting", first(rets))
	return forbidden
}

// spamThenInvite is federated_user_may_invite: when every module allows
// the invite, user_may_invite(sender, state_key, room_id) is asked too.
func (e *Engine) spamThenInvite(ctx context.Context, cb *luaapi.Callback, ev *Event) (SpamDecision, error) {
	d, err := e.spam(ctx, cb, argsOf(ev))
	if err != nil || !d.Allowed() {
		return d, err
	}
	target := ""
	if ev.StateKey != nil {
		target = *ev.StateKey
	}
	return e.UserMayInvite(ctx, ev.Sender, target, ev.RoomID)
}

// ---- booleans ----

// firstBool: the first answer equal to stopOn wins, otherwise !stopOn.
// nil is no opinion; any other non-boolean counts as the refusal.
func (e *Engine) firstBool(ctx context.Context, cb *luaapi.Callback, stopOn bool, args func(*lua.LState) []lua.LValue) (bool, error) {
	result := !stopOn
	// The refusal: false for "first false denies", true for "first true
	// wins" (spammy username, drop the event).
	refusal := stopOn
	refused, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		v, ok := first(rets).(lua.LBool)
		if !ok {
			if first(rets) == lua.LNil {
				return false
			}
			e.warnReturn(L, b, fmt.Sprintf("a boolean; treating as %v", refusal), first(rets))
			v = lua.LBool(refusal)
		}
		if bool(v) == stopOn {
			result = stopOn
			return true
		}
		return false
	})
	if err != nil {
		return !stopOn, err
	}
	if refused != nil {
		return refusal, nil
	}
	return result, nil
}

// ---- registration ----

func (e *Engine) registration(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (RegistrationBehaviour, error) {
	result := RegistrationAllow
	refused, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		s, _ := first(rets).(lua.LString)
		switch RegistrationBehaviour(s) {
		case RegistrationAllow:
			return false
		case RegistrationShadowBan, RegistrationDeny:
			result = RegistrationBehaviour(s)
			return true
		}
		e.warnReturn(L, b, "api.RegistrationBehaviour.ALLOW, SHADOW_BAN or DENY; denying", first(rets))
		result = RegistrationDeny
		return true
	})
	if err != nil {
		return RegistrationAllow, err
	}
	if refused != nil {
		return RegistrationDeny, nil
	}
	return result, nil
}

// ---- third-party rules ----

func (e *Engine) eventAllowed(ctx context.Context, cb *luaapi.Callback, ev *Event, state StateMap) (EventDecision, error) {
	var d EventDecision
	refusal := &SynapseError{Code: 403, Errcode: "M_FORBIDDEN", Msg: cb.Deny}
	var convErr error
	refused, err := e.walk(ctx, cb, argsOf(ev, state), func(L *lua.LState, b binding, rets []lua.LValue) bool {
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
			d.refusal = refusal
			return true
		case lua.LTrue:
		default:
			e.warnReturn(L, b, "true or false [, replacement]; refusing", v)
			d.refusal = refusal
			return true
		}
		if repl != lua.LNil {
			d.Replacement, convErr = eventFromLua(L, repl)
			return true
		}
		return false
	})
	if err != nil {
		return EventDecision{}, err
	}
	if refused != nil {
		var se *ScriptError
		if errors.As(refused, &se) && se.Raised != nil {
			return EventDecision{refusal: se.Raised}, nil // the module's own refusal, as raised
		}
		return EventDecision{refusal: refusal}, nil
	}
	if convErr != nil {
		return EventDecision{}, fmt.Errorf("check_event_allowed: replacement event: %w", convErr)
	}
	return d, nil
}

// chain is on_create_room: every module may change the request content,
// which the next module and the host see. A raise denies: a SynapseError
// as it is, anything else as 403.
func (e *Engine) chain(ctx context.Context, cb *luaapi.Callback, requester *Requester, content map[string]any, isAdmin bool) (map[string]any, error) {
	cur := content
	snap := e.acquire()
	defer snap.release()
	for _, b := range snap.callbacks[cb] {
		var tbl lua.LValue
		// Any error refuses the room creation.
		err := e.call(ctx, b.gen, 0, cb, true, b.gen.callOf(b.idx, cb.Name,
			func(L *lua.LState) []lua.LValue {
				tbl = toLua(L, cur)
				if tbl == lua.LNil {
					tbl = L.NewTable()
				}
				return []lua.LValue{toLua(L, requester), tbl, lua.LBool(isAdmin)}
			},
			func(L *lua.LState, _ []lua.LValue) error {
				m, err := stdlib.FromLua(L, tbl)
				if err != nil {
					return fmt.Errorf("request_content is no longer JSON: %w", err)
				}
				cur, _ = m.(map[string]any)
				return nil
			}))
		if err != nil {
			var se *ScriptError
			if errors.As(err, &se) && se.Raised != nil {
				return nil, se.Raised
			}
			e.logScriptError(cb.Name+" failed; refusing room creation", err)
			return nil, &SynapseError{Code: 403, Errcode: "M_FORBIDDEN", Msg: cb.Deny}
		}
	}
	return cur, nil
}

// ---- notifications and values ----

func (e *Engine) notify(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) error {
	_, err := e.walk(ctx, cb, args, nil)
	return err
}

// firstValue returns the first non-nil answer, converted to Go.
func (e *Engine) firstValue(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (any, error) {
	var out any
	var convErr error
	_, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		v := first(rets)
		if v == lua.LNil {
			return false
		}
		out, convErr = stdlib.FromLua(L, v)
		return true
	})
	if err == nil && convErr != nil {
		err = fmt.Errorf("%s: %w", cb.Name, convErr)
	}
	return out, err
}

// opinion: the first boolean wins; decided is false when every module
// answered nil. A refusal (on_error: deny) is an opinion of true.
func (e *Engine) opinion(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (value, decided bool, err error) {
	refused, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if v, ok := first(rets).(lua.LBool); ok {
			value, decided = bool(v), true
			return true
		}
		return false
	})
	if refused != nil {
		return true, true, nil
	}
	return value, decided, err
}

func (e *Engine) firstString(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (string, bool, error) {
	var out string
	var found bool
	_, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if s, ok := first(rets).(lua.LString); ok {
			out, found = string(s), true
			return true
		}
		return false
	})
	return out, found, err
}

// ---- account validity's legacy hooks ----

// legacyRenew reads on_legacy_renew's answer: token_valid, token_stale,
// expiration_ts (several returns, or one array of the three, as a Python
// tuple would be written). nil when no module registered it.
func (e *Engine) legacyRenew(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (*LegacyRenewal, error) {
	var res *LegacyRenewal
	var bad error
	_, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if t, ok := first(rets).(*lua.LTable); ok && len(rets) == 1 {
			rets = []lua.LValue{t.RawGetInt(1), t.RawGetInt(2), t.RawGetInt(3)}
		}
		var v, st lua.LBool
		var n lua.LNumber
		ok := len(rets) == 3
		if ok {
			var okV, okS, okN bool
			v, okV = rets[0].(lua.LBool)
			st, okS = rets[1].(lua.LBool)
			n, okN = rets[2].(lua.LNumber)
			ok = okV && okS && okN && float64(n) == math.Trunc(float64(n))
		}
		if !ok {
			bad = fmt.Errorf("module %q: %s must return token_valid, token_stale, expiration_ts (two booleans and an integer), got %s",
				b.gen.cfg.Name, cb.Name, describeReturns(L, rets))
			return true
		}
		res = &LegacyRenewal{TokenValid: bool(v), TokenStale: bool(st), ExpirationTS: int64(n)}
		return true
	})
	if err == nil {
		err = bad
	}
	return res, err
}

// firstInteger: the first integer answer wins; ok is false when every
// module answered nil (or none registered the callback).
func (e *Engine) firstInteger(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (int64, bool, error) {
	var out int64
	var found bool
	var bad error
	_, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		switch v := first(rets).(type) {
		case *lua.LNilType:
			return false
		case lua.LNumber:
			f := float64(v)
			if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
				out, found = int64(f), true
				return true
			}
		}
		bad = fmt.Errorf("module %q: %s must return an integer or nil, got %s", b.gen.cfg.Name, cb.Name, describeReturns(L, rets))
		return true
	})
	if err == nil {
		err = bad
	}
	return out, found, err
}

// describeReturns shows what a callback returned, for an error.
func describeReturns(L *lua.LState, rets []lua.LValue) string {
	if len(rets) == 0 {
		return "nothing"
	}
	parts := make([]string, len(rets))
	for i, v := range rets {
		parts[i] = runtime.ToString(L, v)
	}
	return strings.Join(parts, ", ")
}

// ---- password auth ----

// auth asks the modules in order until one accepts. For auth_checkers
// only the checkers declared for loginType are asked, each with the login
// dict cut to the fields it declared.
func (e *Engine) auth(ctx context.Context, cb *luaapi.Callback, loginType string, loginDict map[string]any, args ...any) (*AuthResult, error) {
	var res *AuthResult
	snap := e.acquire()
	defer snap.release()
	for _, b := range snap.callbacks[cb] {
		callArgs := args
		if b.reg.LoginType != "" {
			if b.reg.LoginType != loginType {
				continue
			}
			fields := map[string]any{}
			for _, f := range b.reg.Fields {
				if v, ok := loginDict[f]; ok {
					fields[f] = v
				}
			}
			callArgs = append(append([]any(nil), args...), fields)
		}
		closed := policy(cb, b.gen) == luaapi.OnErrorClosed
		err := e.call(ctx, b.gen, 0, cb, closed, b.gen.callOf(b.idx, cb.Name, argsOf(callArgs...), func(L *lua.LState, rets []lua.LValue) error {
			res = readAuth(L, b, rets)
			return nil
		}))
		if err != nil {
			if closed {
				e.logScriptError(cb.Name+" failed; refusing the login", err)
				return nil, nil
			}
			e.logScriptError(cb.Name+" failed; asking the next one", err)
			continue
		}
		if res != nil {
			return res, nil
		}
	}
	return nil, nil
}

func readAuth(L *lua.LState, b binding, rets []lua.LValue) *AuthResult {
	s, ok := first(rets).(lua.LString)
	if !ok || s == "" {
		return nil
	}
	r := &AuthResult{UserID: string(s), gen: b.gen, inst: instanceOf(b.gen, L)}
	if len(rets) > 1 {
		r.onLoggedIn, _ = rets[1].(*lua.LFunction)
	}
	if r.onLoggedIn != nil {
		r.release = b.gen.hold()
	}
	return r
}

// LoginTypes lists the login types modules accept through auth_checkers,
// with the fields each needs (for GET /login).
func (e *Engine) LoginTypes() map[string][]string {
	out := map[string][]string{}
	if e == nil {
		return out
	}
	for _, b := range e.snap.Load().callbacks[cbCheckAuth] {
		if _, ok := out[b.reg.LoginType]; !ok {
			out[b.reg.LoginType] = b.reg.Fields
		}
	}
	return out
}

// ---- presence ----

func (e *Engine) mergeStates(ctx context.Context, cb *luaapi.Callback, updates []PresenceState) (map[string][]map[string]any, error) {
	out := map[string][]map[string]any{}
	seen := map[string]map[string]bool{}
	_, err := e.walk(ctx, cb, argsOf(updates), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		t, ok := first(rets).(*lua.LTable)
		if !ok {
			return false
		}
		t.ForEach(func(k, v lua.LValue) {
			user := lua.LVAsString(k)
			list, _ := stdlib.FromLua(L, v)
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
	return out, err
}

func (e *Engine) unionUsers(ctx context.Context, cb *luaapi.Callback, userID string) (InterestedUsers, error) {
	var res InterestedUsers
	seen := map[string]bool{}
	_, err := e.walk(ctx, cb, argsOf(userID), func(L *lua.LState, b binding, rets []lua.LValue) bool {
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
	if res.All {
		res.Users = nil
	}
	return res, err
}

// ---- unsigned fields ----

func (e *Engine) mergeFields(ctx context.Context, cb *luaapi.Callback, ev *Event) (map[string]any, error) {
	out := map[string]any{}
	_, err := e.walk(ctx, cb, argsOf(ev), func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if t, ok := first(rets).(*lua.LTable); ok {
			m, _ := stdlib.FromLua(L, t)
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

// ---- background updates ----

func (e *Engine) batch(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (*UpdateBatch, error) {
	var res *UpdateBatch
	_, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		n, ok := first(rets).(lua.LNumber)
		if !ok {
			return true
		}
		res = &UpdateBatch{DurationMS: float64(n), gen: b.gen, inst: instanceOf(b.gen, L)}
		if len(rets) > 1 {
			res.done, _ = rets[1].(*lua.LFunction)
		}
		if res.done != nil {
			res.release = b.gen.hold()
		}
		return true
	})
	return res, err
}

func (e *Engine) batchSize(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (int, error) {
	size := 100
	_, err := e.walk(ctx, cb, args, func(L *lua.LState, b binding, rets []lua.LValue) bool {
		if n, ok := first(rets).(lua.LNumber); ok && n >= 1 {
			size = int(n)
		}
		return true
	})
	return size, err
}

// ---- typed results of firstValue ----

func toMapResult(v any, err error) (map[string]any, error) {
	m, _ := v.(map[string]any)
	return m, err
}

func toMediaUploadLimits(v any, err error) ([]MediaUploadLimit, error) {
	if err != nil || v == nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		if m, isMap := v.(map[string]any); isMap && len(m) == 0 {
			arr = nil // {} from Lua: an empty list, unlimited
		} else {
			return nil, fmt.Errorf("get_media_upload_limits_for_user must return an array of {max_bytes=, time_period_ms=} or nil")
		}
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

func toRatelimitOverride(v any, err error) (*RatelimitOverride, error) {
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

// mediaFile is check_media_file_for_spam's file argument: file:read()
// returns the bytes.
type mediaFile func() ([]byte, error)

func (read mediaFile) toLua(L *lua.LState) lua.LValue {
	t := L.CreateTable(0, 1)
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

// opt turns the zero value of an optional argument into nil for the
// script (Synapse's None).
func opt[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

func optMap(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

// instanceOf is the number of the instance whose state L is.
func instanceOf(g *generation, L *lua.LState) int {
	for i, in := range g.insts {
		if in.rt.L == L {
			return i + 1
		}
	}
	return 1
}
