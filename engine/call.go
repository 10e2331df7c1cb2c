package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// Call invokes a callback by name ("category.callback" or the bare name)
// with JSON arguments in Synapse's order, combining every module's answer
// with the callback's rule. It is what `luahost call` runs; the result
// marshals to the JSON the CLI prints.
func (e *Engine) Call(ctx context.Context, name string, rawArgs []json.RawMessage) (any, error) {
	cb, err := luaapi.LookupCallback(name)
	if err != nil {
		return nil, err
	}
	args, err := decodeArgs(cb, rawArgs)
	if err != nil {
		return nil, err
	}
	sem := semantics[cb.ID()]
	if sem == nil {
		return nil, fmt.Errorf("%s: %w in this version of luahost", cb.ID(), errNoSuchCallback)
	}
	return sem(e, ctx, cb, args)
}

// semantic runs one callback across modules with its combine rule.
type semantic func(e *Engine, ctx context.Context, cb *luaapi.Callback, args []any) (any, error)

// semantics maps callback IDs to the typed invoker that combines every
// module's answer. Adding a callback is one catalogue entry plus one line
// here (and its typed method).
var semantics = map[string]semantic{
	"spam_checker.should_drop_federated_event": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.ShouldDropFederatedEvent(ctx, a[0].(*Event))
	},
	"spam_checker.federated_user_may_invite": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.FederatedUserMayInvite(ctx, a[0].(*Event))
	},
	"spam_checker.check_username_for_spam": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.CheckUsernameForSpam(ctx, a[0].(map[string]any), a[1].(string))
	},
	"spam_checker.check_registration_for_spam": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.checkRegistration(ctx, a)
	},
	"spam_checker.check_media_file_for_spam": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		// From the CLI the file argument is its content as a JSON string.
		content, _ := a[0].(string)
		return e.CheckMediaFileForSpam(ctx, func() ([]byte, error) { return []byte(content), nil }, a[1].(map[string]any))
	},
	"third_party_rules.check_event_allowed": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		ok, repl, err := e.CheckEventAllowed(ctx, a[0].(*Event), a[1].(StateMap))
		return CheckEventAllowedResult{Allowed: ok, Replacement: repl}, err
	},
	"third_party_rules.on_create_room": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		var req Requester
		if err := remarshal(a[0], &req); err != nil {
			return nil, fmt.Errorf("requester: %w", err)
		}
		return e.OnCreateRoom(ctx, &req, a[1].(map[string]any), a[2].(bool))
	},
	"third_party_rules.check_threepid_can_be_invited": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.CheckThreepidCanBeInvited(ctx, a[0].(string), a[1].(string), a[2].(StateMap))
	},
	"third_party_rules.check_visibility_can_be_modified": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.CheckVisibilityCanBeModified(ctx, a[0].(string), a[1].(StateMap), a[2].(string))
	},
	"third_party_rules.check_can_shutdown_room": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.CheckCanShutdownRoom(ctx, str(a[0]), a[1].(string))
	},
	"third_party_rules.check_can_deactivate_user": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.CheckCanDeactivateUser(ctx, a[0].(string), a[1].(bool))
	},
	"presence_router.get_users_for_states": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		var states []PresenceState
		if err := remarshal(a[0], &states); err != nil {
			return nil, fmt.Errorf("state_updates: %w", err)
		}
		return e.GetUsersForStates(ctx, states)
	},
	"presence_router.get_interested_users": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.GetInterestedUsers(ctx, a[0].(string))
	},
	"account_validity.is_user_expired": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		expired, decided, err := e.IsUserExpired(ctx, a[0].(string))
		if !decided {
			return nil, err
		}
		return expired, err
	},
	"password_auth_provider.auth_checkers": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		res, err := e.CheckAuth(ctx, a[0].(string), a[1].(string), a[2].(map[string]any))
		if res == nil {
			return nil, err
		}
		return res, err
	},
	"password_auth_provider.check_3pid_auth": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		res, err := e.Check3PIDAuth(ctx, a[0].(string), a[1].(string), a[2].(string))
		if res == nil {
			return nil, err
		}
		return res, err
	},
	"password_auth_provider.get_username_for_registration": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return optString(e.GetUsernameForRegistration(ctx, a[0].(map[string]any), a[1].(map[string]any)))
	},
	"password_auth_provider.get_displayname_for_registration": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return optString(e.GetDisplaynameForRegistration(ctx, a[0].(map[string]any), a[1].(map[string]any)))
	},
	"password_auth_provider.is_3pid_allowed": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.Is3PIDAllowed(ctx, a[0].(string), a[1].(string), a[2].(bool))
	},
	"background_update_controller.on_update": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		u, err := e.OnUpdate(ctx, a[0].(string), a[1].(string), a[2].(bool))
		if u == nil {
			return nil, err
		}
		if err == nil {
			err = u.Done(ctx)
		}
		return u, err
	},
	"background_update_controller.default_batch_size": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.DefaultBatchSize(ctx, a[0].(string), a[1].(string))
	},
	"background_update_controller.min_batch_size": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.MinBatchSize(ctx, a[0].(string), a[1].(string))
	},
	"add_extra_fields_to_unsigned_client_event.add_field_to_unsigned_callback": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.AddFieldsToUnsigned(ctx, a[0].(*Event))
	},
	"media_repository.get_media_config_for_user": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		m, err := e.GetMediaConfigForUser(ctx, a[0].(string))
		if m == nil {
			return nil, err
		}
		return m, err
	},
	"media_repository.is_user_allowed_to_upload_media_of_size": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		return e.IsUserAllowedToUploadMediaOfSize(ctx, a[0].(string), int64(a[1].(float64)))
	},
	"media_repository.get_media_upload_limits_for_user": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		l, err := e.GetMediaUploadLimitsForUser(ctx, a[0].(string))
		if l == nil {
			return nil, err
		}
		return l, err
	},
	"ratelimit.get_ratelimit_override_for_user": func(e *Engine, ctx context.Context, _ *luaapi.Callback, a []any) (any, error) {
		o, err := e.GetRatelimitOverrideForUser(ctx, a[0].(string), a[1].(string))
		if o == nil {
			return nil, err
		}
		return o, err
	},
}

func init() {
	for name := range spamLegacy {
		semantics["spam_checker."+name] = spamSemantic
	}
	// Notifications: every module runs; the CLI prints null.
	for _, cat := range luaapi.Catalogue {
		for _, cb := range cat.Callbacks {
			if cb.Notify {
				semantics[cb.ID()] = func(e *Engine, ctx context.Context, cb *luaapi.Callback, a []any) (any, error) {
					return nil, e.notify(ctx, cb.ID(), a...)
				}
			}
		}
	}
}

func spamSemantic(e *Engine, ctx context.Context, cb *luaapi.Callback, args []any) (any, error) {
	return e.spamCheck(ctx, cb, luaArgs(args))
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func optString(s string, ok bool, err error) (any, error) {
	if !ok {
		return nil, err
	}
	return s, err
}

func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// luaArgs converts decoded arguments on the loop goroutine.
func luaArgs(args []any) func(*lua.LState) []lua.LValue {
	return func(L *lua.LState) []lua.LValue {
		out := make([]lua.LValue, len(args))
		for i, a := range args {
			out[i] = luaapi.ToLua(L, a)
		}
		return out
	}
}

func fromLua(L *lua.LState, v lua.LValue) (any, error) { return stdlib.FromLua(L, v) }

// decodeArgs checks the count and the kind of each JSON argument.
func decodeArgs(cb *luaapi.Callback, raw []json.RawMessage) ([]any, error) {
	if len(raw) != len(cb.Args) {
		return nil, fmt.Errorf("%s takes %d argument(s) (%s), got %d", cb.ID(), len(cb.Args), argNames(cb), len(raw))
	}
	out := make([]any, len(raw))
	for i, r := range raw {
		a := cb.Args[i]
		v, err := decodeArg(a.Kind, r)
		if err != nil {
			return nil, fmt.Errorf("%s: argument %d (%s): %w", cb.ID(), i+1, a.Name, err)
		}
		out[i] = v
	}
	return out, nil
}

func argNames(cb *luaapi.Callback) string {
	names := make([]string, len(cb.Args))
	for i, a := range cb.Args {
		names[i] = a.Name + ": " + string(a.Kind)
	}
	return strings.Join(names, ", ")
}

func decodeArg(k luaapi.Kind, raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	isNull := string(raw) == "null"
	strict := func(dst any) error {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(dst); err != nil {
			return fmt.Errorf("expected %s: %v", k, err)
		}
		return nil
	}
	switch k {
	case luaapi.KindEvent:
		var ev Event
		if isNull || raw[0] != '{' {
			return nil, fmt.Errorf("expected an event object, got %s", raw)
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("expected an event object: %v", err)
		}
		return &ev, nil
	case luaapi.KindState:
		var s StateMap
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("expected a state map {event_type: {state_key: event}}: %v", err)
		}
		if s == nil {
			s = StateMap{}
		}
		return s, nil
	case luaapi.KindString, luaapi.KindOptStr:
		if isNull && k == luaapi.KindOptStr {
			return nil, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("expected a JSON string, got %s", raw)
		}
		return s, nil
	case luaapi.KindBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("expected true or false, got %s", raw)
		}
		return b, nil
	case luaapi.KindNumber:
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("expected a number, got %s", raw)
		}
		return f, nil
	case luaapi.KindTable, luaapi.KindOptTable:
		if isNull && k == luaapi.KindOptTable {
			return nil, nil
		}
		var m map[string]any
		if isNull || raw[0] != '{' {
			return nil, fmt.Errorf("expected a JSON object, got %s", raw)
		}
		if err := strict(&m); err != nil {
			return nil, err
		}
		return m, nil
	case luaapi.KindArray:
		var a []any
		if isNull || raw[0] != '[' {
			return nil, fmt.Errorf("expected a JSON array, got %s", raw)
		}
		if err := strict(&a); err != nil {
			return nil, err
		}
		return a, nil
	default:
		var v any
		if err := strict(&v); err != nil {
			return nil, err
		}
		return v, nil
	}
}
