package sandbox

import (
	"math"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/lpattern"
)

// string.find, match, gmatch and gsub run on internal/lpattern, Lua 5.1's
// matcher made interruptible: gopher-lua's pm backtracks without a bound
// and cannot be stopped (string.find(("a"):rep(2e4), ("a-"):rep(20).."b")
// ran for minutes, a core at 100%, the module answering nothing). The
// matcher checks the call's deadline every few microseconds of work.
// Results are Lua 5.1's (lpattern's corpus is lua5.1's answers); gmatch
// reads '^' literally, as 5.1 does (gopher-lua anchored on it).

// patterns caches compiled patterns for every state: a Pattern is
// immutable, and the cache bounds itself.
var patterns = lpattern.NewCache(1024)

// matchOptions bounds a match by the context of the thread that runs it.
func matchOptions(L *lua.LState) *lpattern.Options {
	ctx := L.Context()
	if ctx == nil {
		return nil
	}
	return &lpattern.Options{Check: ctx.Err}
}

// raisePattern raises a matcher error: a pattern error as Lua 5.1 words
// it, a deadline as "string.find: context deadline exceeded".
func raisePattern(L *lua.LState, fn string, err error) {
	if _, ok := err.(*lpattern.Error); ok {
		L.RaiseError("%s", err.Error())
	}
	L.RaiseError("%s: %s", fn, err.Error())
}

// optInteger reads an optional integer argument as Lua 5.1's
// luaL_optinteger does (truncated), clamped into int64.
func optInteger(L *lua.LState, n int, def int64) int64 {
	if L.Get(n) == lua.LNil {
		return def
	}
	f := math.Trunc(float64(L.CheckNumber(n)))
	switch {
	case f != f:
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// pushCaptures pushes the values of m (n of them, see Match.Count).
func pushCaptures(L *lua.LState, fn, subject string, m *lpattern.Match, n int) int {
	for i := 0; i < n; i++ {
		c, err := m.Get(i)
		if err != nil {
			raisePattern(L, fn, err)
		}
		L.Push(captureValue(subject, c))
	}
	return n
}

func captureValue(subject string, c lpattern.Capture) lua.LValue {
	if c.Kind == lpattern.CapPosition {
		return lua.LNumber(c.Start + 1)
	}
	return lua.LString(subject[c.Start:c.End])
}

func strFind(L *lua.LState) int {
	s := L.CheckString(1)
	p := L.CheckString(2)
	init := lpattern.InitOffset(optInteger(L, 3, 1), len(s))
	plain := lua.LVAsBool(L.Get(4))
	m, err := patterns.Find(s, p, init, plain, matchOptions(L))
	if err != nil {
		raisePattern(L, "string.find", err)
	}
	if m == nil {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LNumber(m.Start + 1))
	L.Push(lua.LNumber(m.End))
	return 2 + pushCaptures(L, "string.find", s, m, m.Count(false))
}

func strMatch(L *lua.LState) int {
	s := L.CheckString(1)
	p := L.CheckString(2)
	init := lpattern.InitOffset(optInteger(L, 3, 1), len(s))
	m, err := patterns.Compile(p).Find(s, init, matchOptions(L))
	if err != nil {
		raisePattern(L, "string.match", err)
	}
	if m == nil {
		L.Push(lua.LNil)
		return 1
	}
	return pushCaptures(L, "string.match", s, m, m.Count(true))
}

func strGmatch(L *lua.LState) int {
	s := L.CheckString(1)
	p := L.CheckString(2)
	// Each call of the iterator runs under the deadline of the thread
	// that makes it.
	var cur *lua.LState
	opts := &lpattern.Options{Check: func() error {
		if ctx := cur.Context(); ctx != nil {
			return ctx.Err()
		}
		return nil
	}}
	it := patterns.CompileGmatch(p).Iter(s, opts)
	L.Push(L.NewFunction(func(L *lua.LState) int {
		cur = L
		m, err := it.Next()
		cur = nil
		if err != nil {
			raisePattern(L, "string.gmatch", err)
		}
		if m == nil {
			return 0
		}
		return pushCaptures(L, "string.gmatch", s, m, m.Count(true))
	}))
	return 1
}

// gsub is string.gsub with Lua 5.1's semantics: %0-%9 and %% in a string
// replacement (a number is its string), a table indexed by the first
// capture, a function called with the captures; a false or nil
// replacement keeps the match. The result is built once and capped at
// MaxStringBuild (gopher-lua's rebuilt the string for every match).
func gsub(L *lua.LState) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	L.CheckTypes(3, lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	limit := optInteger(L, 4, int64(len(src))+1)
	it := patterns.Compile(pat).Iter(src, matchOptions(L))
	var b []byte
	last, n := 0, int64(0)
	replStr := ""
	if r, ok := repl.(lua.LString); ok {
		replStr = string(r)
	} else if r, ok := repl.(lua.LNumber); ok {
		replStr = r.String()
	}
	for n < limit {
		m, err := it.Next()
		if err != nil {
			raisePattern(L, "string.gsub", err)
		}
		if m == nil {
			break
		}
		n++
		b = append(b, src[last:m.Start]...)
		whole := src[m.Start:m.End]
		switch r := repl.(type) {
		case lua.LString, lua.LNumber:
			if b, err = lpattern.Expand(b, replStr, src, m); err != nil {
				raisePattern(L, "string.gsub", err)
			}
		case *lua.LTable:
			c, err := m.Get(0)
			if err != nil {
				raisePattern(L, "string.gsub", err)
			}
			b = appendReplacement(L, b, L.GetTable(r, captureValue(src, c)), whole)
		case *lua.LFunction:
			if err := m.Err(); err != nil {
				raisePattern(L, "string.gsub", err)
			}
			count := m.Count(true)
			args := make([]lua.LValue, 0, count)
			for i := 0; i < count; i++ {
				c, _ := m.Get(i)
				args = append(args, captureValue(src, c))
			}
			var v lua.LValue
			NoYield(L, func() int {
				L.Push(r)
				for _, a := range args {
					L.Push(a)
				}
				L.Call(len(args), 1)
				v = L.Get(-1)
				L.Pop(1)
				return 0
			})
			b = appendReplacement(L, b, v, whole)
		}
		last = m.End
		if len(b) > MaxStringBuild {
			L.RaiseError("string.gsub: result would exceed %d MiB", MaxStringBuild>>20)
		}
	}
	b = append(b, src[last:]...)
	if len(b) > MaxStringBuild {
		L.RaiseError("string.gsub: result would exceed %d MiB", MaxStringBuild>>20)
	}
	L.Push(lua.LString(b))
	L.Push(lua.LNumber(n))
	return 2
}

// appendReplacement appends a table's or a function's replacement value:
// false or nil keeps the match, a string or number replaces it.
func appendReplacement(L *lua.LState, b []byte, v lua.LValue, whole string) []byte {
	switch v := v.(type) {
	case lua.LString:
		return append(b, v...)
	case lua.LNumber:
		return append(b, v.String()...)
	}
	if lua.LVIsFalse(v) {
		return append(b, whole...)
	}
	L.RaiseError("invalid replacement value (a %s)", v.Type().String())
	return b
}
