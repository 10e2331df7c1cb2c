package lint

import (
	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
)

// TableFields describes t's string keys for an Env, descending into
// fields that are plain tables down to depth levels (1: t's own keys
// only). A table with a metatable (other than the sandbox's guards, which
// only make a missing key raise), one met again inside itself (_G,
// string.__index) or one past depth is left unchecked (nil), since its
// keys need not be all it answers to.
//
// Build an Env from a module's real state, on the goroutine that owns it:
//
//	lint.Env{Globals: lint.TableFields(L.G.Global, 2), API: lint.TableFields(api, 2)}
func TableFields(t *lua.LTable, depth int) Fields {
	return tableFields(t, depth, map[*lua.LTable]bool{t: true})
}

func tableFields(t *lua.LTable, depth int, open map[*lua.LTable]bool) Fields {
	f := Fields{}
	t.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if !ok {
			return
		}
		var sub Fields
		if vt, ok := v.(*lua.LTable); ok && depth > 1 && (vt.Metatable == lua.LNil || sandbox.IsGuard(vt.Metatable)) && !open[vt] {
			open[vt] = true
			sub = tableFields(vt, depth-1, open)
			delete(open, vt)
		}
		f[string(name)] = sub
	})
	return f
}
