package luatest

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/stdlib"
)

// The assertions raise at the test file's line, with a message that shows
// both sides: "spam_test.lua:12: t.equal: got "NOT_SPAM", want "M_FORBIDDEN"".
// An optional last argument names what is checked.

func (fr *fileRun) installAsserts(t *lua.LTable) {
	L := fr.L
	t.RawSetString("equal", L.NewFunction(fr.assertEqual))
	t.RawSetString("same", L.NewFunction(fr.assertSame))
	t.RawSetString("matches", L.NewFunction(fr.assertMatches))
	t.RawSetString("raises", L.NewFunction(fr.assertRaises))
	t.RawSetString("ok", L.NewFunction(fr.assertOK))
}

// failf raises an assertion failure; what is the caller's description.
func (fr *fileRun) failf(what lua.LValue, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s, ok := what.(lua.LString); ok && s != "" {
		msg = string(s) + ": " + msg
	}
	fr.raise("%s", msg)
}

func (fr *fileRun) assertEqual(L *lua.LState) int {
	got, want := L.Get(1), L.Get(2)
	if L.GetTop() < 2 {
		fr.raise("t.equal(got, want [, what]) needs two values")
	}
	if L.Equal(got, want) {
		return 0
	}
	hint := ""
	if got.Type() == lua.LTTable && want.Type() == lua.LTTable {
		hint = " (two different tables: t.same compares contents)"
	}
	fr.failf(L.Get(3), "t.equal: got %s, want %s%s", render(L, got), render(L, want), hint)
	return 0
}

func (fr *fileRun) assertSame(L *lua.LState) int {
	if L.GetTop() < 2 {
		fr.raise("t.same(got, want [, what]) needs two values")
	}
	got, want := L.Get(1), L.Get(2)
	var diffs []string
	compare(L, got, want, "", &diffs, map[[2]lua.LValue]bool{})
	if len(diffs) == 0 {
		return 0
	}
	const maxDiffs = 20
	more := ""
	if len(diffs) > maxDiffs {
		more = fmt.Sprintf("\n  ... and %d more", len(diffs)-maxDiffs)
		diffs = diffs[:maxDiffs]
	}
	fr.failf(L.Get(3), "t.same: values differ:\n  %s%s\ngot:  %s\nwant: %s",
		strings.Join(diffs, "\n  "), more, render(L, got), render(L, want))
	return 0
}

func (fr *fileRun) assertMatches(L *lua.LState) int {
	s, ok := L.Get(1).(lua.LString)
	pattern := L.CheckString(2)
	if !ok {
		fr.failf(L.Get(3), "t.matches: got %s, want a string matching %q", render(L, L.Get(1)), pattern)
	}
	find := L.GetField(L.GetGlobal("string"), "find")
	L.Push(find)
	L.Push(s)
	L.Push(lua.LString(pattern))
	L.Call(2, 1)
	found := L.Get(-1)
	L.Pop(1)
	if found == lua.LNil {
		fr.failf(L.Get(3), "t.matches: %s does not match the pattern %q", render(L, s), pattern)
	}
	return 0
}

func (fr *fileRun) assertRaises(L *lua.LState) int {
	fn := L.CheckFunction(1)
	want := L.OptString(2, "")
	L.Push(fn)
	err := L.PCall(0, 0, nil)
	if err == nil {
		if want != "" {
			fr.failf(L.Get(3), "t.raises: the function returned normally; want an error containing %q", want)
		}
		fr.failf(L.Get(3), "t.raises: the function returned normally; want an error")
	}
	msg := err.Error()
	if ae, ok := err.(*lua.ApiError); ok {
		if ud, ok := ae.Object.(*lua.LUserData); ok {
			if _, isSkip := ud.Value.(*skipped); isSkip {
				L.Error(ae.Object, 0) // t.skip inside: pass it on
			}
		}
		msg = errorText(L, ae.Object)
	}
	if want != "" && !strings.Contains(msg, want) {
		fr.failf(L.Get(3), "t.raises: the error %q does not contain %q", msg, want)
	}
	L.Push(lua.LString(msg))
	return 1
}

func (fr *fileRun) assertOK(L *lua.LState) int {
	if !lua.LVAsBool(L.Get(1)) {
		fr.failf(L.Get(2), "t.ok: got %s, want a true value", render(L, L.Get(1)))
	}
	L.Push(L.Get(1))
	return 1
}

// compare walks got and want and records each difference with its path.
func compare(L *lua.LState, got, want lua.LValue, path string, diffs *[]string, seen map[[2]lua.LValue]bool) {
	at := path
	if at == "" {
		at = "(top)"
	}
	gt, wt := got.Type(), want.Type()
	if gt != lua.LTTable || wt != lua.LTTable {
		if !sameScalar(got, want) {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %s, want %s", at, render(L, got), render(L, want)))
		}
		return
	}
	key := [2]lua.LValue{got, want}
	if seen[key] {
		return
	}
	seen[key] = true
	g, w := got.(*lua.LTable), want.(*lua.LTable)
	for _, k := range sortedKeys(w, g) {
		gv, wv := g.RawGet(k), w.RawGet(k)
		sub := path + keyPath(k)
		switch {
		case gv == lua.LNil:
			*diffs = append(*diffs, fmt.Sprintf("%s: missing, want %s", sub, render(L, wv)))
		case wv == lua.LNil:
			*diffs = append(*diffs, fmt.Sprintf("%s: got %s, want nothing there", sub, render(L, gv)))
		default:
			compare(L, gv, wv, sub, diffs, seen)
		}
	}
}

func sameScalar(a, b lua.LValue) bool {
	if x, ok := a.(lua.LNumber); ok {
		y, ok := b.(lua.LNumber)
		return ok && (x == y || math.IsNaN(float64(x)) && math.IsNaN(float64(y)))
	}
	return a == b
}

// sortedKeys is every key of the tables: array indices in order, then the
// rest sorted by their text.
func sortedKeys(ts ...*lua.LTable) []lua.LValue {
	seen := map[lua.LValue]bool{}
	var nums []float64
	var others []lua.LValue
	for _, t := range ts {
		t.ForEach(func(k, _ lua.LValue) {
			if seen[k] {
				return
			}
			seen[k] = true
			if n, ok := k.(lua.LNumber); ok {
				nums = append(nums, float64(n))
			} else {
				others = append(others, k)
			}
		})
	}
	sort.Float64s(nums)
	sort.Slice(others, func(i, j int) bool { return lua.LVAsString(others[i]) < lua.LVAsString(others[j]) })
	out := make([]lua.LValue, 0, len(nums)+len(others))
	for _, n := range nums {
		out = append(out, lua.LNumber(n))
	}
	return append(out, others...)
}

func keyPath(k lua.LValue) string {
	switch k := k.(type) {
	case lua.LNumber:
		return "[" + k.String() + "]"
	case lua.LString:
		if isIdent(string(k)) {
			return "." + string(k)
		}
		return "[" + strconv.Quote(string(k)) + "]"
	}
	return "[" + k.String() + "]"
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// render shows a value in Lua syntax, cut to a readable length.
func render(L *lua.LState, v lua.LValue) string {
	var b strings.Builder
	renderTo(L, &b, v, 0, map[*lua.LTable]bool{})
	s := b.String()
	if len(s) > 2000 {
		s = s[:2000] + " ...(cut)"
	}
	return s
}

func renderTo(L *lua.LState, b *strings.Builder, v lua.LValue, depth int, seen map[*lua.LTable]bool) {
	switch v := v.(type) {
	case lua.LString:
		b.WriteString(strconv.Quote(string(v)))
	case *lua.LTable:
		if seen[v] || depth > 20 {
			b.WriteString("{...}")
			return
		}
		seen[v] = true
		defer delete(seen, v)
		keys := sortedKeys(v)
		b.WriteString("{")
		n := v.Len()
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			if num, ok := k.(lua.LNumber); !ok || float64(num) < 1 || float64(num) > float64(n) || float64(num) != math.Trunc(float64(num)) {
				if s, ok := k.(lua.LString); ok && isIdent(string(s)) {
					b.WriteString(string(s))
				} else {
					b.WriteString("[")
					renderTo(L, b, k, depth+1, seen)
					b.WriteString("]")
				}
				b.WriteString(" = ")
			}
			renderTo(L, b, v.RawGet(k), depth+1, seen)
		}
		b.WriteString("}")
	case *lua.LUserData:
		if stdlib.IsNull(L, v) {
			b.WriteString("json.null")
			return
		}
		b.WriteString(v.String())
	default:
		b.WriteString(v.String())
	}
}
