package sandbox

import (
	lua "github.com/yuin/gopher-lua"
)

// Names the sandbox takes away would otherwise read as nil, and a script
// using them would fail with "attempt to index a non-table object(nil)"
// or "attempt to call a non-function object", which never mentions the
// sandbox. These read raise at the script's line instead:
//
//	spam.lua:3: io is not available in the luahost sandbox (no file access): keep data in api.store and settings in the module's config
//
// Only misses reach __index: reads of globals that exist cost nothing.

// Removed maps each global the sandbox takes away to what to do instead.
var Removed = map[string]string{
	"io":       " (no file access): keep data in api.store and settings in the module's config",
	"debug":    ": trace with print or require(\"log\")",
	"package":  ": require(\"name\") loads name.lua from the module's folder or a bundled library",
	"dofile":   " (no file access): require(\"name\") loads the module's own files",
	"loadfile": " (no file access): require(\"name\") loads the module's own files",
	"module":   ": a file returns its table instead (local M = {} ... return M)",
	"newproxy": ": use setmetatable on a table",
}

// RemovedOS maps each os function the sandbox takes away to what to do
// instead; os.time, os.clock, os.date and os.difftime remain.
var RemovedOS = map[string]string{
	"execute":   " (no processes)",
	"exit":      " (a module cannot stop the server): raise an error instead",
	"getenv":    ": pass settings through the module's config",
	"setenv":    " (the environment belongs to the server)",
	"remove":    " (no file access)",
	"rename":    " (no file access)",
	"tmpname":   " (no file access)",
	"setlocale": " (the locale belongs to the server)",
}

// GuardMarker is a field of the metatables that make reading a missing
// key raise (here, and luaapi.GuardMembers): such a table's own keys are
// all it answers to, so a linter may list them as its members.
const GuardMarker = "__luahost_guard"

// IsGuard reports whether mt is such a metatable.
func IsGuard(mt lua.LValue) bool {
	t, ok := mt.(*lua.LTable)
	return ok && t.RawGetString(GuardMarker) == lua.LTrue
}

// guardRemoved installs the raising reads on the globals, os and string.
func guardRemoved(L *lua.LState) {
	raiseOn(L, L.G.Global, "", Removed)
	if osT, ok := L.G.Global.RawGetString("os").(*lua.LTable); ok {
		raiseOn(L, osT, "os.", RemovedOS)
	}
	if strT, ok := L.G.Global.RawGetString("string").(*lua.LTable); ok {
		raiseOn(L, strT, "string.", map[string]string{"dump": " (no bytecode)"})
	}
}

func raiseOn(L *lua.LState, t *lua.LTable, prefix string, removed map[string]string) {
	mt := L.CreateTable(0, 2)
	mt.RawSetString(GuardMarker, lua.LTrue)
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		if key, ok := L.Get(2).(lua.LString); ok {
			if hint, gone := removed[string(key)]; gone {
				RaiseAtScript(L, "%s%s is not available in the luahost sandbox%s", prefix, string(key), hint)
			}
		}
		L.Push(lua.LNil)
		return 1
	}))
	t.Metatable = mt
}
