package engine

import (
	"context"
	"encoding/json"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
)

// The combined answers the invokers return.

// SpamDecision is the spam checkers' combined answer: allowed (NOT_SPAM)
// or a rejection with a Matrix errcode and optional extra fields.
type SpamDecision struct {
	Errcode string         // "" when allowed
	Msg     string         // the message the module gave, if any
	Extra   map[string]any // extra fields for the error body
	deny    string         // the callback's default message
}

// NotSpam is the decision that allows the action.
var NotSpam = SpamDecision{}

// Allowed reports whether the action may go ahead.
func (d SpamDecision) Allowed() bool { return d.Errcode == "" }

// Err is the 403 error response for a rejection (with the module's
// errcode, message and extra fields), or nil when allowed:
//
//	if err := d.Err(); err != nil { err.Write(w); return }
func (d SpamDecision) Err() *SynapseError {
	if d.Allowed() {
		return nil
	}
	msg := d.Msg
	if msg == "" {
		msg = d.deny
	}
	if msg == "" {
		msg = "Forbidden"
	}
	return &SynapseError{Code: 403, Errcode: d.Errcode, Msg: msg, Extra: d.Extra}
}

// Decision is a combined answer that may refuse (SpamDecision,
// EventDecision).
type Decision interface {
	Err() *SynapseError
}

// Refusal turns an invoker's answer into the error response to send: nil
// to go ahead, the modules' refusal, or a 500 when the invoker failed (a
// script error the engine logged with its traceback):
//
//	if e := engine.Refusal(eng.CheckEventForSpam(ctx, ev)); e != nil {
//		e.Write(w)
//		return
//	}
func Refusal[D Decision](d D, err error) *SynapseError {
	if err != nil {
		return &SynapseError{Code: 500, Errcode: "M_UNKNOWN", Msg: "Internal server error"}
	}
	return d.Err()
}

// EventDecision is check_event_allowed's combined answer.
type EventDecision struct {
	// Replacement, when set, is the event to send instead (a module
	// rewrote it); nil keeps the original.
	Replacement *Event
	refusal     *SynapseError
}

// Allowed reports whether the event may be sent.
func (d EventDecision) Allowed() bool { return d.refusal == nil }

// Err is the error response for a refused event (403 "This event is not
// allowed in this context", or the SynapseError the module raised), or nil.
func (d EventDecision) Err() *SynapseError { return d.refusal }

// RegistrationBehaviour is check_registration_for_spam's answer.
type RegistrationBehaviour string

const (
	RegistrationAllow     RegistrationBehaviour = "allow"
	RegistrationShadowBan RegistrationBehaviour = "shadow_ban"
	RegistrationDeny      RegistrationBehaviour = "deny"
)

// RequestInfo is one (user agent, IP) pair a registration or login came
// from. Scripts see {user_agent = ..., ip = ...}, also indexable as
// [1] and [2] like Synapse's (user_agent, ip) tuples.
type RequestInfo struct {
	UserAgent string `json:"user_agent"`
	IP        string `json:"ip"`
}

// UnmarshalJSON accepts {"user_agent": ..., "ip": ...} or Synapse's
// ["user agent", "ip"] pair.
func (r *RequestInfo) UnmarshalJSON(b []byte) error {
	var pair []string
	if err := json.Unmarshal(b, &pair); err == nil {
		if len(pair) != 2 {
			return fmt.Errorf("request info pair must be [user_agent, ip], got %d items", len(pair))
		}
		r.UserAgent, r.IP = pair[0], pair[1]
		return nil
	}
	type plain RequestInfo
	return json.Unmarshal(b, (*plain)(r))
}

// InterestedUsers is get_interested_users' combined answer: All, or a set.
type InterestedUsers struct {
	All   bool
	Users []string
}

// AuthResult is an accepted login.
type AuthResult struct {
	UserID     string
	gen        *generation
	inst       int // the instance whose function onLoggedIn is
	onLoggedIn *lua.LFunction
	release    func() // the hold on gen while onLoggedIn may still run
}

// LoggedIn passes the login response ({user_id, access_token, device_id,
// home_server, ...}) to the module's on_logged_in callback, if it gave one.
// It runs on the module generation that accepted the login, even if a
// reload replaced it since.
func (r *AuthResult) LoggedIn(ctx context.Context, response map[string]any) error {
	if r == nil || r.onLoggedIn == nil {
		return nil
	}
	defer r.release()
	return r.gen.eng.callNamed(ctx, r.gen, r.inst, "password_auth_provider.on_logged_in",
		runtime.Call{What: "on_logged_in", Fn: r.onLoggedIn, Args: argsOf(response), Timeout: r.gen.cfg.Timeout})
}

// UpdateBatch is on_update's answer: how long the next batch should take,
// and the module's function to call when it ends.
type UpdateBatch struct {
	DurationMS float64
	gen        *generation
	inst       int
	done       *lua.LFunction
	release    func() // the hold on gen while done may still run
}

// Done tells the module the batch ended (its optional second return).
func (u *UpdateBatch) Done(ctx context.Context) error {
	if u == nil || u.done == nil {
		return nil
	}
	defer u.release()
	return u.gen.eng.callNamed(ctx, u.gen, u.inst, "background_update_controller.on_update.done",
		runtime.Call{What: "on_update (batch end)", Fn: u.done, Timeout: u.gen.cfg.Timeout})
}

// MediaUploadLimit is one upload limit.
type MediaUploadLimit struct {
	MaxBytes     int64 `json:"max_bytes"`
	TimePeriodMS int64 `json:"time_period_ms"`
}

// RatelimitOverride is a per-user rate limit.
type RatelimitOverride struct {
	PerSecond  float64 `json:"per_second"`
	BurstCount float64 `json:"burst_count"`
}

// LegacyRenewal is on_legacy_renew's answer, as Synapse's legacy
// account_validity renew endpoint uses it.
type LegacyRenewal struct {
	// TokenValid: the token was valid and unused, and the account renewed.
	TokenValid bool `json:"token_valid"`
	// TokenStale: the token was valid but used already.
	TokenStale bool `json:"token_stale"`
	// ExpirationTS is the account's expiry in ms since the epoch (0 for
	// an invalid token).
	ExpirationTS int64 `json:"expiration_ts"`
}
