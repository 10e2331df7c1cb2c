package luaapi

import (
	"fmt"
	"sort"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
)

// Reading a member the api table does not have would give nil, and the
// script would fail later with "attempt to call a non-function object",
// naming nothing. GuardMembers makes such a read raise at the script's
// line instead, with a "did you mean" for a slip:
//
//	spam.lua:12: api.register_spam_checker_callback: no such function (did you mean register_spam_checker_callbacks?)
//
// Only misses reach __index, so working code pays nothing. Members in
// NilableMembers read as nil. A script that wants to probe for a member
// (a newer luahost function) uses rawget(api, "name").

// GuardMembers sets a metatable on t whose __index raises for a missing
// member. path names t in messages ("api", "api.store"); what is the
// noun for a miss when no suggestion says otherwise ("function",
// "errcode").
func GuardMembers(L *lua.LState, t *lua.LTable, path, what string) {
	GuardLazy(L, t, path, what, nil)
}

// GuardLazy is GuardMembers for a table whose members fill adds on first
// use: the first read of any member (or pairs) runs fill, then reads
// again. Most modules touch few of api's sub-tables, and building every
// one's functions up front cost each of 500 small modules ~20 KB. It
// returns the metatable so a caller can add to it (a class's __call).
func GuardLazy(L *lua.LState, t *lua.LTable, path, what string, fill func(L *lua.LState, t *lua.LTable)) *lua.LTable {
	var nilable map[string]bool
	if path == "api" {
		nilable = map[string]bool{}
		for _, n := range NilableMembers {
			nilable[n] = true
		}
	}
	materialise := func(L *lua.LState) {
		if fill != nil {
			f := fill
			fill = nil
			f(L, t)
		}
	}
	mt := L.CreateTable(0, 3)
	mt.RawSetString(sandbox.GuardMarker, lua.LTrue)
	if fill != nil {
		mt.RawSetString("__pairs", L.NewFunction(func(L *lua.LState) int {
			materialise(L)
			L.Push(L.GetGlobal("next"))
			L.Push(t)
			L.Push(lua.LNil)
			return 3
		}))
	}
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		if fill != nil {
			materialise(L)
			if v := t.RawGet(L.Get(2)); v != lua.LNil {
				L.Push(v)
				return 1
			}
		}
		key, ok := L.Get(2).(lua.LString)
		if !ok || nilable[string(key)] {
			L.Push(lua.LNil)
			return 1
		}
		var names []string
		kinds := map[string]lua.LValueType{}
		t.ForEach(func(k, v lua.LValue) {
			if s, ok := k.(lua.LString); ok {
				names = append(names, string(s))
				kinds[string(s)] = v.Type()
			}
		})
		sort.Strings(names)
		noun := what
		hint := ""
		if s := Suggest(string(key), names); s != "" {
			if what == "function" && kinds[s] != lua.LTFunction {
				noun = "member"
			}
			hint = fmt.Sprintf(" (did you mean %s?)", s)
		} else if path == "api" {
			hint = " (docs/module_api.md lists what api offers)"
		}
		sandbox.RaiseAtScript(L, "%s.%s: no such %s%s", path, string(key), noun, hint)
		return 0
	}))
	t.Metatable = mt
	return mt
}
