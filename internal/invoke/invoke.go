// Package invoke runs a callback by name with JSON arguments through the
// engine's typed invokers, as `luahost call` does, and gives back the
// combined answer in the JSON shape the CLI prints.
package invoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/luaapi"
)

// Call runs one callback ("category.name" or an unambiguous bare name)
// across the loaded modules through its typed invoker (the generated
// calls table) and returns what to print as JSON.
func Call(ctx context.Context, e *engine.Engine, name string, raw []json.RawMessage) (any, error) {
	res, err := Run(ctx, e, name, raw)
	if err != nil {
		return nil, err
	}
	return printable(res), nil
}

// NotRegisteredError is a call of a callback no loaded module registered:
// the invoker would answer its default ("NOT_SPAM", true, nil), which
// says nothing about the modules.
type NotRegisteredError struct {
	Callback string // "spam_checker.check_event_for_spam"
	// Registered lists what the loaded modules do register, by module.
	Registered []string
}

func (e *NotRegisteredError) Error() string {
	msg := "no loaded module registered " + e.Callback
	if len(e.Registered) == 0 {
		return msg + " (the loaded modules register no callbacks)"
	}
	return msg + " (registered: " + strings.Join(e.Registered, "; ") + ")"
}

// Run is Call without the printing: it returns the typed invoker's
// answer (engine.SpamDecision, bool, ...); see Values.
func Run(ctx context.Context, e *engine.Engine, name string, raw []json.RawMessage) (any, error) {
	cb, err := luaapi.LookupCallback(name)
	if err != nil {
		return nil, err
	}
	run := calls[cb.ID()]
	if run == nil {
		return nil, fmt.Errorf("%s: no invoker in this version of luahost", cb.ID())
	}
	if err := registered(e, cb); err != nil {
		return nil, err
	}
	return run(e, ctx, cb, raw)
}

// registered checks that some loaded module registered cb.
func registered(e *engine.Engine, cb *luaapi.Callback) error {
	nr := &NotRegisteredError{Callback: cb.ID()}
	for _, st := range e.Status() {
		for _, c := range st.Callbacks {
			if c == cb.ID() || strings.HasPrefix(c, cb.ID()+"[") {
				return nil
			}
		}
		if len(st.Callbacks) > 0 {
			nr.Registered = append(nr.Registered, st.Name+": "+strings.Join(st.Callbacks, ", "))
		}
	}
	return nr
}

// Values is a typed answer as the values a script would return: a spam
// verdict is errcode (or "NOT_SPAM") and its extra fields, an event check
// is allowed and the replacement, an auth check the user ID, a legacy
// renewal token_valid, token_stale, expiration_ts; anything
// else is one value, shaped as Call prints it. JSON null inside is nil.
func Values(v any) []any {
	switch v := v.(type) {
	case engine.SpamDecision:
		if v.Allowed() {
			return []any{"NOT_SPAM"}
		}
		if len(v.Extra) == 0 && v.Msg == "" {
			return []any{v.Errcode}
		}
		extra := map[string]any{}
		for k, x := range v.Extra {
			extra[k] = x
		}
		if v.Msg != "" {
			extra["error"] = v.Msg
		}
		return []any{v.Errcode, extra}
	case engine.EventDecision:
		if v.Replacement == nil {
			return []any{v.Allowed(), nil}
		}
		return []any{v.Allowed(), v.Replacement}
	case *engine.AuthResult:
		if v == nil {
			return []any{nil}
		}
		return []any{v.UserID}
	case *engine.LegacyRenewal:
		if v == nil {
			return []any{nil}
		}
		return []any{v.TokenValid, v.TokenStale, v.ExpirationTS}
	}
	return []any{printable(v)}
}

// printable is the JSON shape `luahost call` prints for a combined answer.
func printable(v any) any {
	switch v := v.(type) {
	case engine.SpamDecision:
		switch {
		case v.Allowed():
			return "NOT_SPAM"
		case len(v.Extra) > 0 || v.Msg != "":
			extra := map[string]any{}
			for k, x := range v.Extra {
				extra[k] = x
			}
			if v.Msg != "" {
				extra["error"] = v.Msg
			}
			return []any{v.Errcode, extra}
		default:
			return v.Errcode
		}
	case engine.EventDecision:
		return []any{v.Allowed(), v.Replacement}
	case engine.InterestedUsers:
		if v.All {
			return "ALL"
		}
		if v.Users == nil {
			return []string{}
		}
		return v.Users
	case *engine.AuthResult:
		if v == nil {
			return nil
		}
		return []string{v.UserID}
	case *engine.UpdateBatch:
		if v == nil {
			return nil
		}
		return v.DurationMS
	case *engine.LegacyRenewal:
		if v == nil {
			return nil
		}
		return []any{v.TokenValid, v.TokenStale, v.ExpirationTS}
	case *engine.RatelimitOverride:
		if v == nil {
			return nil
		}
		return v
	case []engine.MediaUploadLimit:
		if v == nil {
			return nil
		}
		return v
	case map[string]any:
		if v == nil {
			return nil
		}
		return v
	}
	return v
}

// decodeArgs checks the argument count (trailing arguments Synapse added
// later may be left out) and decodes each JSON argument into the typed
// invoker's parameter, with a message that names the argument.
func decodeArgs(cb *luaapi.Callback, raw []json.RawMessage, dst ...any) error {
	if len(raw) < cb.MinArgs() || len(raw) > len(cb.Args) {
		want := fmt.Sprint(len(cb.Args))
		if cb.MinArgs() < len(cb.Args) {
			want = fmt.Sprintf("%d to %d", cb.MinArgs(), len(cb.Args))
		}
		return fmt.Errorf("%s takes %s argument(s) (%s), got %d", cb.ID(), want, argNames(cb), len(raw))
	}
	for i, r := range raw {
		a := cb.Args[i]
		if err := decodeArg(a.Kind, r, dst[i]); err != nil {
			return fmt.Errorf("%s: argument %d (%s): %w", cb.ID(), i+1, a.Name, err)
		}
	}
	return nil
}

// legacyAdminPath is where Synapse serves the request
// on_legacy_admin_request receives.
const legacyAdminPath = "/_synapse/admin/v1/account_validity/validity"

// jsonRequest is the request a callback with a request argument gets from
// the command line: a POST of body as JSON, to the admin path Synapse
// hands on_legacy_admin_request.
func jsonRequest(body json.RawMessage) *http.Request {
	req, err := http.NewRequest(http.MethodPost, "http://localhost"+legacyAdminPath, bytes.NewReader(body))
	if err != nil {
		panic("luahost: " + err.Error()) // a constant URL
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func argNames(cb *luaapi.Callback) string {
	names := make([]string, len(cb.Args))
	for i, a := range cb.Args {
		names[i] = a.Name + ": " + string(a.Kind)
		if a.Late {
			names[i] += " (optional)"
		}
	}
	return strings.Join(names, ", ")
}

func decodeArg(k luaapi.Kind, raw json.RawMessage, dst any) error {
	raw = bytes.TrimSpace(raw)
	isNull := string(raw) == "null"
	shown := string(raw)
	if len(shown) > 200 {
		shown = shown[:200] + "..."
	}
	want := func(what string) error { return fmt.Errorf("expected %s, got %s", what, shown) }
	switch k {
	case luaapi.KindEvent:
		if isNull || raw[0] != '{' {
			return want("an event object")
		}
	case luaapi.KindState:
		if !isNull && raw[0] != '{' {
			return want("a state map {event_type: {state_key: event}}")
		}
	case luaapi.KindString, luaapi.KindFile:
		if raw[0] != '"' {
			return want(`a JSON string (quote it: '"text"')`)
		}
	case luaapi.KindOptStr:
		if !isNull && raw[0] != '"' {
			return want(`a JSON string or null (quote it: '"text"')`)
		}
	case luaapi.KindBool:
		if string(raw) != "true" && string(raw) != "false" {
			return want("true or false")
		}
	case luaapi.KindNumber:
		if isNull || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
			return want("a number")
		}
	case luaapi.KindTable:
		if isNull || raw[0] != '{' {
			return want("a JSON object")
		}
	case luaapi.KindOptTable:
		if !isNull && raw[0] != '{' {
			return want("a JSON object or null")
		}
	case luaapi.KindArray:
		if isNull || raw[0] != '[' {
			return want("a JSON array")
		}
	case luaapi.KindRequest:
		if isNull || raw[0] != '{' {
			return want("the request's JSON body, an object")
		}
	}
	if isNull {
		return nil // the zero value: nil, "" (an absent optional argument)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(dst); err != nil {
		var num *json.UnmarshalTypeError
		if errors.As(err, &num) && num.Value == "number" {
			return fmt.Errorf("number out of range: %s", shown)
		}
		return fmt.Errorf("expected %s: %v", k, err)
	}
	return nil
}
