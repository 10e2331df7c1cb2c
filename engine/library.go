package engine

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"

	lua "github.com/yuin/gopher-lua"
	luar "layeh.com/gopher-luar"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/stdlib"
)

// Libraries: an embedder exposes its own Go API to scripts through
// Options.Libraries, name -> value; a script gets it with
// require("name"). The value may be
//
//   - a struct or a pointer to one: its exported methods become the
//     library's functions (lib.method(...) and lib:method(...) both work);
//   - a map[string]any: each entry becomes a field (functions callable);
//   - a function: the library is that function.
//
// Arguments and results convert by reflection (gopher-luar): Go structs
// reach the script as userdata with their fields and methods, maps and
// slices as userdata you index like tables. A library function runs on
// the module's state under the calling callback's deadline, so it must
// return quickly (a slow one holds up the module's other calls); a Go
// panic inside it becomes a Lua error at the calling script line.

var validLibName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// libraries builds the Options.Libraries values for a new state.
func (e *Engine) libraries(L *lua.LState) (map[string]lua.LValue, error) {
	if len(e.opts.Libraries) == 0 {
		return nil, nil
	}
	out := make(map[string]lua.LValue, len(e.opts.Libraries))
	for name, v := range e.opts.Libraries {
		if !validLibName.MatchString(name) || name == "module_api" {
			return nil, fmt.Errorf("Options.Libraries: %q is not a valid library name", name)
		}
		if _, clash := stdlib.Lookup(name); clash {
			return nil, fmt.Errorf("Options.Libraries: %q is the name of a bundled library", name)
		}
		lv, err := libraryValue(L, name, v)
		if err != nil {
			return nil, fmt.Errorf("Options.Libraries[%q]: %w", name, err)
		}
		out[name] = lv
	}
	return out, nil
}

func libraryValue(L *lua.LState, name string, v any) (lua.LValue, error) {
	rv := reflect.ValueOf(v)
	switch {
	case !rv.IsValid():
		return nil, fmt.Errorf("nil value")
	case rv.Kind() == reflect.Func:
		return guarded(L, name, luar.New(L, v)), nil
	case rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String:
		t := L.NewTable()
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			ev := rv.MapIndex(k).Interface()
			t.RawSetString(k.String(), guarded(L, name+"."+k.String(), luar.New(L, ev)))
		}
		return t, nil
	case rv.Kind() == reflect.Struct || rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Struct:
		t := L.NewTable()
		typ := rv.Type()
		n := 0
		for i := 0; i < typ.NumMethod(); i++ {
			m := typ.Method(i)
			if !m.IsExported() {
				continue
			}
			fn := guarded(L, name+"."+m.Name, luar.New(L, rv.Method(i).Interface()))
			if f, ok := fn.(*lua.LFunction); ok && f.IsG {
				fn = closureLike(L, f, sandbox.MethodTolerant(t, f.GFunction))
			}
			t.RawSetString(m.Name, fn)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%T has no exported methods", v)
		}
		return t, nil
	default:
		return luar.New(L, v), nil
	}
}

// guarded wraps a Go function so that a panic inside it is a Lua error at
// the calling script line, not a crash of the module's call. The wrapper
// carries the wrapped function's upvalues (gopher-luar keeps the Go
// function in them), which the wrapped code reads from the running
// function.
func guarded(L *lua.LState, what string, v lua.LValue) lua.LValue {
	f, ok := v.(*lua.LFunction)
	if !ok || !f.IsG {
		return v
	}
	inner := f.GFunction
	return closureLike(L, f, func(L *lua.LState) (n int) {
		defer func() {
			if p := recover(); p != nil {
				if _, isLua := p.(*lua.ApiError); isLua {
					panic(p) // a Lua error (bad argument): already positioned
				}
				sandbox.RaiseAtScript(L, "%s: %v", what, p)
			}
		}()
		return inner(L)
	})
}

// closureLike makes a Go function with f's upvalues.
func closureLike(L *lua.LState, f *lua.LFunction, fn lua.LGFunction) *lua.LFunction {
	ups := make([]lua.LValue, len(f.Upvalues))
	for i, uv := range f.Upvalues {
		ups[i] = uv.Value()
	}
	return L.NewClosure(fn, ups...)
}
