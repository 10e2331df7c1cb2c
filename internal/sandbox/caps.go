package sandbox

import (
	"fmt"
	"math"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Builtins that could run far past a call's deadline or build values of
// any size are replaced with versions that check the deadline as they go
// and cap what they return; otherwise they behave as Lua 5.1's.
//
// gopher-lua grows a coroutine's value stack 32 slots at a time, copying
// it each time: pushing n results one by one costs O(n²) (unpack of 300k
// items ran for a minute, then failed with "registry overflow"). These
// grow the stack once (pushResults).

const (
	// MaxResults caps how many values one builtin call returns (unpack,
	// string.byte). Lua 5.1 stops at 8000 (LUAI_MAXCSTACK); scripts here
	// may unpack more, well inside a coroutine's stack (RegistryMaxSize).
	MaxResults = 1 << 16
	// MaxCoroutineNesting caps pcall, xpcall, coroutine.resume and
	// coroutine.wrap calls inside each other (Lua 5.1's C stack limit).
	// Each level is a Go call; past a deadline gopher-lua unwinds nested
	// coroutines one panic per level, in quadratic time.
	MaxCoroutineNesting = 200
	// deadlineEvery is how many steps a long builtin takes between
	// deadline checks.
	deadlineEvery = 4096
)

// checkDeadline raises the call's deadline error if it has passed.
func checkDeadline(L *lua.LState, what string) {
	if ctx := L.Context(); ctx != nil {
		if err := ctx.Err(); err != nil {
			L.RaiseError("%s: %s", what, err.Error())
		}
	}
}

func installCaps(L *lua.LState) {
	g := L.G.Global
	g.RawSetString("unpack", L.NewFunction(cappedUnpack))
	if strT, ok := g.RawGetString("string").(*lua.LTable); ok {
		strT.RawSetString("byte", L.NewFunction(cappedByte))
		strT.RawSetString("char", L.NewFunction(cappedChar))
	}
	if tabT, ok := g.RawGetString("table").(*lua.LTable); ok {
		tabT.RawSetString("concat", L.NewFunction(cappedConcat))
		tabT.RawSetString("sort", L.NewFunction(func(L *lua.LState) int {
			return NoYield(L, func() int { return interruptibleSort(L) })
		}))
	}
	if coT, ok := g.RawGetString("coroutine").(*lua.LTable); ok {
		installCoroutines(L, coT)
	}
}

// installCoroutines replaces coroutine.create, resume and wrap.
//
// gopher-lua's create gives a thread made while a context is set a child
// context (context.WithCancel) whose cancel function it keeps to itself:
// with the runtime's context, each coroutine.create left a goroutine
// behind until the module's next timeout. These create threads without a
// context and hand each resume the resumer's context instead, so a
// coroutine still stops at the call's deadline. They also count nesting
// (MaxCoroutineNesting).
func installCoroutines(L *lua.LState, coT *lua.LTable) {
	create := coT.RawGetString("create").(*lua.LFunction)
	resume := coT.RawGetString("resume").(*lua.LFunction)
	newThread := func(L *lua.LState) *lua.LState {
		ctx := L.RemoveContext()
		defer func() {
			if ctx != nil {
				L.SetContext(ctx)
			}
		}()
		callThrough(L, create)
		th := L.CheckThread(-1)
		L.Pop(1)
		return th
	}
	// resumeThread resumes th with the values above base on L's stack and
	// leaves resume's results (true, ... | false, err) there.
	resumeThread := func(L *lua.LState, th *lua.LState, base int) int {
		p := poolOf(L)
		if th.Dead {
			L.SetTop(base)
			L.Push(lua.LFalse)
			L.Push(lua.LString("cannot resume dead coroutine"))
			return 2
		}
		if p.depth >= MaxCoroutineNesting {
			L.SetTop(base)
			L.Push(lua.LFalse)
			L.Push(lua.LString(nestingMsg))
			return 2
		}
		if ctx := L.Context(); ctx != nil {
			th.SetContext(ctx)
		} else {
			th.RemoveContext()
		}
		p.depth++
		defer func() { p.depth-- }()
		top := L.GetTop()
		L.Push(resume)
		L.Push(th)
		for i := base + 1; i <= top; i++ {
			L.Push(L.Get(i))
		}
		L.Call(top-base+1, lua.MultRet)
		n := L.GetTop() - top
		// Move the results down over the arguments.
		for i := 1; i <= n; i++ {
			L.Replace(base+i, L.Get(top+i))
		}
		L.SetTop(base + n)
		return n
	}
	coT.RawSetString("create", L.NewFunction(func(L *lua.LState) int {
		L.CheckFunction(1)
		L.Push(newThread(L))
		return 1
	}))
	coT.RawSetString("resume", L.NewFunction(func(L *lua.LState) int {
		th := L.CheckThread(1)
		return resumeThread(L, th, 1)
	}))
	coT.RawSetString("wrap", L.NewFunction(func(L *lua.LState) int {
		L.CheckFunction(1)
		th := newThread(L)
		L.Push(L.NewFunction(func(L *lua.LState) int {
			n := resumeThread(L, th, 0)
			if lua.LVAsBool(L.Get(1)) {
				L.Remove(1)
				return n - 1
			}
			// As Lua 5.1's wrap: the error goes on, a string one with the
			// caller's position in front.
			// (The engine's Lua helpers stand in for Lua's C functions,
			// which add no position.)
			errv := L.Get(2)
			if s, ok := errv.(lua.LString); ok {
				if w := L.Where(1); w != "" && !strings.HasPrefix(w, "<") {
					errv = lua.LString(w + " " + string(s))
				}
			}
			L.Error(errv, 0)
			return 0
		}))
		return 1
	}))
}

var nestingMsg = fmt.Sprintf("C stack overflow: pcall, coroutine.resume and coroutine.wrap nested more than %d deep", MaxCoroutineNesting)

// resultRange checks that [i, j] holds at most MaxResults values and
// returns how many it holds (0 when empty).
func resultRange(L *lua.LState, i, j float64, msg string) int {
	if i > j {
		return 0
	}
	if j-i+1 > MaxResults || math.IsNaN(j-i) {
		L.RaiseError("%s", msg)
	}
	return int(j-i) + 1
}

func cappedUnpack(L *lua.LState) int {
	t := L.CheckTable(1)
	i := float64(L.OptNumber(2, 1))
	j := float64(L.OptNumber(3, lua.LNumber(t.Len())))
	i, j = math.Trunc(i), math.Trunc(j) // as Lua 5.1 casts
	n := resultRange(L, i, j, "too many results to unpack")
	return pushResults(L, n, func(k int) lua.LValue { return t.RawGetInt(int(i) + k) })
}

// pushResults pushes n values, growing the stack once.
func pushResults(L *lua.LState, n int, value func(k int) lua.LValue) int {
	base := L.GetTop()
	L.SetTop(base + n)
	for k := 0; k < n; k++ {
		L.Replace(base+k+1, value(k))
	}
	return n
}

// cappedByte is string.byte with at most MaxResults results.
func cappedByte(L *lua.LState) int {
	s := L.CheckString(1)
	l := len(s)
	i := L.OptInt(2, 1)
	j := L.OptInt(3, i)
	if i < 0 {
		i = max(l+i+1, 0)
	}
	if j < 0 {
		j = l + j + 1
	}
	i = max(i, 1)
	j = min(j, l)
	n := resultRange(L, float64(i), float64(j), "string slice too long")
	return pushResults(L, n, func(k int) lua.LValue { return lua.LNumber(s[i-1+k]) })
}

func cappedChar(L *lua.LState) int {
	top := L.GetTop()
	if top > MaxStringBuild {
		L.RaiseError("string.char: result would exceed %d MiB", MaxStringBuild>>20)
	}
	b := make([]byte, top)
	for i := 1; i <= top; i++ {
		c := L.CheckInt(i)
		if c < 0 || c > 255 {
			L.ArgError(i, "invalid value")
		}
		b[i-1] = byte(c)
	}
	L.Push(lua.LString(b))
	return 1
}

// cappedConcat is table.concat with gopher-lua's index clamping, built in
// one buffer (gopher-lua's pushes every item on the stack), with the
// deadline checked and the result capped at MaxStringBuild.
func cappedConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	n := t.Len()
	i := L.OptInt(3, 1)
	j := L.OptInt(4, n)
	if L.GetTop() == 3 && (i > n || i < 1) {
		L.Push(lua.LString(""))
		return 1
	}
	i = max(min(i, n), 1)
	j = min(j, n)
	if i > j {
		L.Push(lua.LString(""))
		return 1
	}
	// First the size, so nothing is built that would be refused.
	size := 0
	for k := i; k <= j; k++ {
		if (k-i)%deadlineEvery == deadlineEvery-1 {
			checkDeadline(L, "table.concat")
		}
		switch v := t.RawGetInt(k).(type) {
		case lua.LString:
			size += len(v)
		case lua.LNumber:
			size += len(v.String())
		default:
			L.RaiseError("invalid value (%s) at index %d in table for concat", v.Type().String(), k)
		}
		if k < j {
			size += len(sep)
		}
		if size > MaxStringBuild {
			L.RaiseError("table.concat: result would exceed %d MiB", MaxStringBuild>>20)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for k := i; k <= j; k++ {
		b.WriteString(lua.LVAsString(t.RawGetInt(k)))
		if k < j {
			b.WriteString(sep)
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// formatSize is an upper bound of string.format's result, to refuse a
// result over MaxStringBuild before building it (gopher-lua formats with
// Go's fmt: %q may quadruple a string).
func formatSize(L *lua.LState, format string) int {
	size := len(format)
	arg := 2
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && strings.IndexByte("-+ #0123456789.", format[i]) >= 0 {
			i++
		}
		if i >= len(format) || format[i] == '%' {
			continue
		}
		v := L.Get(arg)
		arg++
		n := 1000 // widths are capped at 999 (hugeWidth)
		switch format[i] {
		case 's', 'v':
			n += len(lua.LVAsString(v))
		case 'q':
			n += 4*len(lua.LVAsString(v)) + 2
		}
		size += n
	}
	return size
}

// interruptibleSort is table.sort checking the deadline as it compares:
// sorting a million items takes seconds. It sorts 1..#t as gopher-lua
// does (the same algorithm on the same sequence, so ties land alike).
func interruptibleSort(L *lua.LState) int {
	t := L.CheckTable(1)
	var fn *lua.LFunction
	if L.GetTop() > 1 && L.Get(2) != lua.LNil {
		fn = L.CheckFunction(2)
	}
	n := t.Len()
	vals := make([]lua.LValue, n)
	for k := range vals {
		vals[k] = t.RawGetInt(k + 1)
	}
	sort.Sort(&luaSorter{L: L, fn: fn, vals: vals})
	for k, v := range vals {
		t.RawSetInt(k+1, v)
	}
	return 0
}

type luaSorter struct {
	L     *lua.LState
	fn    *lua.LFunction
	vals  []lua.LValue
	steps int
}

func (s *luaSorter) Len() int      { return len(s.vals) }
func (s *luaSorter) Swap(i, j int) { s.vals[i], s.vals[j] = s.vals[j], s.vals[i] }
func (s *luaSorter) Less(i, j int) bool {
	s.steps++
	if s.steps%deadlineEvery == 0 {
		checkDeadline(s.L, "table.sort")
	}
	if s.fn == nil {
		return s.L.LessThan(s.vals[i], s.vals[j])
	}
	s.L.Push(s.fn)
	s.L.Push(s.vals[i])
	s.L.Push(s.vals[j])
	s.L.Call(2, 1)
	r := lua.LVAsBool(s.L.Get(-1))
	s.L.Pop(1)
	return r
}
