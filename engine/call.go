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

// semantics maps callback IDs to their combine rules. Adding a callback is
// one catalogue entry plus one line here.
var semantics = map[string]semantic{}

func init() {
	for name := range spamLegacy {
		semantics["spam_checker."+name] = spamSemantic
	}
}

func spamSemantic(e *Engine, ctx context.Context, cb *luaapi.Callback, args []any) (any, error) {
	return e.spamCheck(ctx, cb, luaArgs(args))
}

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
