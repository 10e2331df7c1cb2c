// Package stdlib holds the Lua libraries a luahost module may require:
// json, re, crypto, base64, url, time, log and strings. Each is a Go
// loader over Go's standard library, registered by name in this package.
//
// Loaders run on the goroutine that owns the *lua.LState (see engine's
// runtime); nothing here may keep a state or touch it from another goroutine.
package stdlib

import (
	"log/slog"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Env is what a library knows about the module that loads it. The engine
// makes one per module state.
type Env struct {
	// Module is the module's name as configured (used in log records).
	Module string
	// Logger receives the log library's records; nil means slog.Default().
	Logger *slog.Logger
	// Now is the time library's clock; nil means time.Now. (luahost test
	// runs modules on a fake clock.)
	Now func() time.Time
	// cache holds per-state library data (compiled regexps, ...), keyed by
	// library.
	cache map[string]any
}

// Cache returns the per-state value stored under key, creating it with mk
// on first use. Only the state's owner goroutine may call it.
func (e *Env) Cache(key string, mk func() any) any {
	if e.cache == nil {
		e.cache = map[string]any{}
	}
	v, ok := e.cache[key]
	if !ok {
		v = mk()
		e.cache[key] = v
	}
	return v
}

// Log returns the logger to use for this module.
func (e *Env) Log() *slog.Logger {
	if e == nil || e.Logger == nil {
		return slog.Default()
	}
	return e.Logger
}

// Loader builds a library's value (usually a table) in L.
type Loader func(L *lua.LState, env *Env) lua.LValue

var loaders = map[string]Loader{}

// register adds a library; called from init functions of this package.
func register(name string, l Loader) {
	if _, dup := loaders[name]; dup {
		panic("luahost: stdlib library registered twice: " + name)
	}
	loaders[name] = l
}

// Lookup returns the loader for a library name.
func Lookup(name string) (Loader, bool) {
	l, ok := loaders[name]
	return l, ok
}

// Names lists the libraries, sorted.
func Names() []string {
	names := make([]string, 0, len(loaders))
	for n := range loaders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Yield bookkeeping. A host call may yield only when every frame between
// it and the engine's coroutine is a Lua frame; Go functions that call back
// into Lua (table.sort, string.gsub, re.gsub) mark the state so a host call
// made from inside them fails clearly instead of returning nil (gopher-lua
// silently breaks there).
const regNoYield = "luahost.noyield"

// NoYield runs f with yielding host calls forbidden on L.
func NoYield(L *lua.LState, f func() int) int {
	reg := L.G.Registry
	n, _ := reg.RawGetString(regNoYield).(lua.LNumber)
	reg.RawSetString(regNoYield, n+1)
	defer reg.RawSetString(regNoYield, n)
	return f()
}

// YieldForbidden reports whether L is inside a NoYield section.
func YieldForbidden(L *lua.LState) bool {
	n, _ := L.G.Registry.RawGetString(regNoYield).(lua.LNumber)
	return n > 0
}
