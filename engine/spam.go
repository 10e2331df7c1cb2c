package engine

import (
	"context"
	"encoding/json"
	"errors"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/luaapi"
)

// Event and friends are the luaapi types, re-exported so embedders need
// import only the engine.
type (
	Event         = luaapi.Event
	StateMap      = luaapi.StateMap
	Requester     = luaapi.Requester
	Profile       = luaapi.Profile
	PresenceState = luaapi.PresenceState
)

// SpamDecision is the spam checkers' combined answer: allowed (NOT_SPAM)
// or a rejection with a Matrix errcode and optional extra fields for the
// error response.
type SpamDecision struct {
	Errcode string         // "" when allowed
	Msg     string         // a message for the client, when the script gave one
	Extra   map[string]any // extra fields for the error JSON
}

// NotSpam is the decision that allows the action.
var NotSpam = SpamDecision{}

// Allowed reports whether the action may go ahead.
func (d SpamDecision) Allowed() bool { return d.Errcode == "" }

// MarshalJSON encodes the decision as `luahost call` prints it:
// "NOT_SPAM", "M_FORBIDDEN" or ["M_FORBIDDEN", {extra}].
func (d SpamDecision) MarshalJSON() ([]byte, error) {
	switch {
	case d.Errcode == "":
		return []byte(`"NOT_SPAM"`), nil
	case len(d.Extra) > 0 || d.Msg != "":
		extra := map[string]any{}
		for k, v := range d.Extra {
			extra[k] = v
		}
		if d.Msg != "" {
			extra["error"] = d.Msg
		}
		return json.Marshal([]any{d.Errcode, extra})
	default:
		return json.Marshal(d.Errcode)
	}
}

var forbidden = SpamDecision{Errcode: "M_FORBIDDEN"}

// legacy says how a spam callback's boolean return is read.
type legacy int

const (
	legacyNone      legacy = iota // only NOT_SPAM or an errcode
	legacyTrueAllow               // user_may_*: true allows, false rejects
	legacyTrueSpam                // check_event_for_spam, media: true rejects
)

var spamLegacy = map[string]legacy{
	"check_event_for_spam":       legacyTrueSpam,
	"check_media_file_for_spam":  legacyTrueSpam,
	"user_may_join_room":         legacyTrueAllow,
	"user_may_invite":            legacyTrueAllow,
	"federated_user_may_invite":  legacyTrueAllow,
	"user_may_send_3pid_invite":  legacyTrueAllow,
	"user_may_create_room":       legacyTrueAllow,
	"user_may_create_room_alias": legacyTrueAllow,
	"user_may_publish_room":      legacyTrueAllow,
	"user_may_send_state_event":  legacyNone,
	"check_login_for_spam":       legacyNone,
}

// spamCheck walks the modules that registered cb in config order; the
// first rejection wins and later modules are not called.
func (e *Engine) spamCheck(ctx context.Context, cb *luaapi.Callback, args func(*lua.LState) []lua.LValue) (SpamDecision, error) {
	mode := spamLegacy[cb.Name]
	snap := e.acquire()
	defer snap.release()
	for _, b := range snap.callbacks[cb] {
		var d SpamDecision
		err := e.invokeBinding(ctx, b, args, func(L *lua.LState, rets []lua.LValue) error {
			d = readSpamResult(L, b, mode, rets, e)
			return nil
		})
		if err != nil {
			if b.gen.denyOnError() {
				e.logScriptError("spam check failed; denying (on_error: deny)", err)
				return forbidden, nil
			}
			e.logScriptError("spam check failed", err)
			return SpamDecision{}, err
		}
		if !d.Allowed() {
			return d, nil
		}
	}
	return NotSpam, nil
}

func readSpamResult(L *lua.LState, b binding, mode legacy, rets []lua.LValue, e *Engine) SpamDecision {
	v := first(rets)
	switch v := v.(type) {
	case lua.LString:
		s := string(v)
		if s == "NOT_SPAM" {
			return NotSpam
		}
		if luaapi.IsErrCode(s) {
			d := SpamDecision{Errcode: s}
			if len(rets) > 1 {
				if t, ok := rets[1].(*lua.LTable); ok {
					if m, err := fromLua(L, t); err == nil {
						d.Extra, _ = m.(map[string]any)
					}
				}
			}
			return d
		}
		if mode == legacyTrueSpam {
			// Legacy: a plain string rejects with that message.
			return SpamDecision{Errcode: "M_FORBIDDEN", Msg: s}
		}
	case lua.LBool:
		switch mode {
		case legacyTrueSpam:
			if !v {
				return NotSpam
			}
			return forbidden
		case legacyTrueAllow:
			if v {
				return NotSpam
			}
			return forbidden
		}
	}
	e.log.Warn("spam checker returned an invalid value; rejecting (return api.NOT_SPAM or an errcode)",
		"module", b.gen.cfg.Name, "callback", b.reg.Callback.Name, "returned", luaToString(L, v))
	return forbidden
}

var (
	cbCheckEventForSpam = luaapi.MustCallback("spam_checker.check_event_for_spam")
)

// CheckEventForSpam asks the spam checkers about an event (Synapse's
// check_event_for_spam). A script error fails the call unless the
// module has on_error: deny.
func (e *Engine) CheckEventForSpam(ctx context.Context, ev *Event) (SpamDecision, error) {
	return e.spamCheck(ctx, cbCheckEventForSpam, func(L *lua.LState) []lua.LValue {
		return []lua.LValue{luaapi.PushEvent(L, ev)}
	})
}

var errNoSuchCallback = errors.New("no such callback")
