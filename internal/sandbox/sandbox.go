// Package sandbox builds the Lua state a module runs in and the
// machinery under it: the restricted standard library with capped
// builtins, coroutine-aware pcall, the worker coroutines the runtime
// resumes, host calls that yield, compilation and require.
//
// Everything here runs on the goroutine that holds the state's baton (see
// engine/internal/runtime); nothing keeps a state or touches it from
// another goroutine.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"regexp"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"

	"github.com/luahost/luahost/stdlib"
)

// Limits of a module's state. They are deliberate: gopher-lua's defaults
// overflow on unpack of 10k items and on recursion past ~200 frames, and
// nothing else bounds what one builtin call may allocate.
const (
	CallStackSize = 1024
	RegistrySize  = 256
	// ThreadRegistrySize is a coroutine's initial value stack (NewState
	// would raise anything under 128 to 5,120; threads take it as is).
	ThreadRegistrySize = 48
	RegistryMaxSize    = 1024 * 256
	// MaxStringBuild caps strings built by string.rep and friends: one
	// call must not be able to take the process down.
	MaxStringBuild = stdlib.MaxStringBuild
)

// NewState returns a sandboxed state: base (without dofile, loadfile,
// module, newproxy; collectgarbage only reports), string, table, math,
// coroutine and os.time/clock/date. No io, no debug, no package.
func NewState() *lua.LState {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       CallStackSize,
		RegistrySize:        RegistrySize,
		RegistryMaxSize:     RegistryMaxSize,
		MinimizeStackMemory: true,
	})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.CoroutineLibName, lua.OpenCoroutine},
		{lua.OsLibName, lua.OpenOs},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	g := L.G.Global
	for _, name := range []string{"dofile", "loadfile", "module", "require", "newproxy", "_printregs", "_GOPHER_LUA_VERSION"} {
		g.RawSetString(name, lua.LNil)
	}
	g.RawSetString("collectgarbage", L.NewFunction(safeCollectGarbage))
	g.RawSetString("loadstring", L.NewFunction(loadString))
	g.RawSetString("load", L.NewFunction(load))
	g.RawSetString("pairs", L.NewFunction(metaPairs))
	g.RawSetString("type", L.NewFunction(proxyAwareType))

	// os: only what cannot touch the machine.
	if osT, ok := g.RawGetString("os").(*lua.LTable); ok {
		safe := L.CreateTable(0, 4)
		for _, name := range []string{"time", "clock", "date", "difftime"} {
			safe.RawSetString(name, osT.RawGetString(name))
		}
		g.RawSetString("os", safe)
	}
	if strT, ok := g.RawGetString("string").(*lua.LTable); ok {
		strT.RawSetString("rep", L.NewFunction(cappedRep))
		strT.RawSetString("dump", lua.LNil)
		orig := strT.RawGetString("format").(*lua.LFunction)
		strT.RawSetString("format", L.NewFunction(func(L *lua.LState) int {
			format := L.CheckString(1)
			if m := hugeWidth.FindString(format); m != "" {
				L.ArgError(1, "format width or precision too large in "+m)
			}
			if formatSize(L, format) > MaxStringBuild {
				L.RaiseError("string.format: result would exceed %d MiB", MaxStringBuild>>20)
			}
			return callThrough(L, orig)
		}))
		strT.RawSetString("gsub", L.NewFunction(gsub))
		strT.RawSetString("find", L.NewFunction(strFind))
		strT.RawSetString("match", L.NewFunction(strMatch))
		strT.RawSetString("gmatch", L.NewFunction(strGmatch))
	}
	if mathT, ok := g.RawGetString("math").(*lua.LTable); ok {
		mathT.RawSetString("huge", lua.LNumber(math.Inf(1))) // gopher-lua has MaxFloat64
	}
	installPcall(L)
	installCaps(L)
	for _, lib := range []string{"string", "table", "math", "os", "coroutine"} {
		NameLibrary(L, lib, g.RawGetString(lib))
	}
	guardRemoved(L)
	// Coroutines (each call's worker, pcall's, the script's) start with a
	// smaller value stack than the main state and grow it as they need:
	// a call parked on a host function holds one, and 256 slots are 4 KB.
	L.Options.RegistrySize = ThreadRegistrySize
	return L
}

var hugeWidth = regexp.MustCompile(`%[-+ #0]*(\d{4,}|\.\d{4,}|\d*\.\d{4,})`)

// callThrough calls a builtin with the current arguments and returns its
// results (used to wrap builtins with a check).
func callThrough(L *lua.LState, fn *lua.LFunction) int {
	top := L.GetTop()
	L.Push(fn)
	for i := 1; i <= top; i++ {
		L.Push(L.Get(i))
	}
	L.Call(top, lua.MultRet)
	return L.GetTop() - top
}

func cappedRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	sep := L.OptString(3, "")
	if n <= 0 {
		L.Push(lua.LString(""))
		return 1
	}
	if (len(s)+len(sep))*n > MaxStringBuild || n > MaxStringBuild {
		L.RaiseError("string.rep: result would exceed %d MiB", MaxStringBuild>>20)
	}
	if sep == "" {
		L.Push(lua.LString(strings.Repeat(s, n)))
		return 1
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s)
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// safeCollectGarbage answers "count" (KiB in use by the process) and
// ignores other options: a full GC from a script would stall every module.
func safeCollectGarbage(L *lua.LState) int {
	if L.OptString(1, "collect") == "count" {
		L.Push(lua.LNumber(0))
		return 1
	}
	L.Push(lua.LNumber(0))
	return 1
}

// tableLikeKey marks the metatable of a userdata that stands for a
// (read-only) table: type() answers "table" for it.
const tableLikeKey = "__luahost_tablelike"

// MarkTableLike makes type() answer "table" for userdata with metatable
// mt (read-only proxies of JSON objects).
func MarkTableLike(mt *lua.LTable) { mt.RawSetString(tableLikeKey, lua.LTrue) }

var typeNames = func() map[lua.LValueType]lua.LValue {
	m := map[lua.LValueType]lua.LValue{}
	for _, t := range []lua.LValueType{lua.LTNil, lua.LTBool, lua.LTNumber, lua.LTString, lua.LTFunction, lua.LTUserData, lua.LTThread, lua.LTTable, lua.LTChannel} {
		m[t] = lua.LString(t.String())
	}
	return m
}()

var tableName = lua.LString("table")

// proxyAwareType is type() that answers "table" for table-like proxies;
// its answers are preallocated (the builtin allocates one per call).
func proxyAwareType(L *lua.LState) int {
	v := L.CheckAny(1)
	if ud, ok := v.(*lua.LUserData); ok {
		if mt, ok := ud.Metatable.(*lua.LTable); ok && mt.RawGetString(tableLikeKey) == lua.LTrue {
			L.Push(tableName)
			return 1
		}
	}
	L.Push(typeNames[v.Type()])
	return 1
}

// metaPairs is pairs with Lua 5.2's __pairs metamethod, so read-only
// proxies (events, state maps) can be walked like tables.
func metaPairs(L *lua.LState) int {
	v := L.CheckAny(1)
	if mm := L.GetMetaField(v, "__pairs"); mm != lua.LNil {
		L.Push(mm)
		L.Push(v)
		L.Call(1, 3)
		return 3
	}
	t := L.CheckTable(1)
	L.Push(L.GetGlobal("next"))
	L.Push(t)
	L.Push(lua.LNil)
	return 3
}

// NoYield runs f with yielding host calls forbidden on L (see
// stdlib.NoYield).
func NoYield(L *lua.LState, f func() int) int { return stdlib.NoYield(L, f) }

func yieldForbidden(L *lua.LState) bool { return stdlib.YieldForbidden(L) }

// pcall and xpcall run the protected function in a coroutine of their own
// and pass every yield of it upward, so a host call inside pcall yields the
// engine's coroutine as if pcall were not there (Lua 5.2 semantics).
// gopher-lua's own pcall is a Go function: a yield inside it is silently
// lost. Coroutines are pooled: a fresh one costs 4-44 µs.
const pcallSrc = `
local resume, take, yield = ...
local function step(co, status, ...)
  if status == 0 then return true, ... end
  if status == 1 then return false, ... end
  return step(co, resume(co, yield(...)))
end
local function pcall(f, ...)
  local co = take()
  return step(co, resume(co, f, ...))
end
local function xstep(h, co, status, ...)
  if status == 0 then return true, ... end
  if status == 1 then return false, h(...) end
  return xstep(h, co, resume(co, yield(...)))
end
local function xpcall(f, h, ...)
  local co = take()
  return xstep(h, co, resume(co, f, ...))
end
return pcall, xpcall
`

// workerSrc is the body of a reusable coroutine: it runs one function per
// resume and yields DONE with the results, then waits for the next one.
const workerSrc = `
local yield, DONE = ...
local function loop(__call, ...) return loop(yield(DONE, __call(...))) end
return loop
`

type coPool struct {
	loop *lua.LFunction
	done lua.LValue
	idle []*lua.LState
	// fresh holds pcall coroutines not yet started with the loop.
	fresh map[*lua.LState]bool
	// engine holds every coroutine the engine runs (workers and pcall
	// coroutines): only there may a host call yield.
	engine map[*lua.LState]bool
	// compiling is held by a compile running beside its caller (see
	// compileFor): one per state.
	compiling chan struct{}
	// depth counts the pcalls and script coroutine resumes running inside
	// each other (see MaxCoroutineNesting).
	depth int
}

func poolOf(L *lua.LState) *coPool {
	return L.G.Registry.RawGetString(regPcallPool).(*lua.LUserData).Value.(*coPool)
}

// MarkEngineThread records th as a coroutine run by the engine (a worker)
// or forgets it (alive false) when it is dead.
func MarkEngineThread(L, th *lua.LState, alive bool) {
	p := poolOf(L)
	if alive {
		p.engine[th] = true
	} else {
		delete(p.engine, th)
	}
}

// EngineThreads lists the coroutines the engine runs on L (workers and
// pcall coroutines), for measuring what the state holds.
func EngineThreads(L *lua.LState) []*lua.LState {
	p := poolOf(L)
	out := make([]*lua.LState, 0, len(p.engine))
	for th := range p.engine {
		out = append(out, th)
	}
	return out
}

// CanYield reports whether a host call made on thread L may yield: it
// must run in an engine coroutine, outside Go builtins that call Lua.
func CanYield(L *lua.LState) error {
	if !poolOf(L).engine[L] {
		return fmt.Errorf("cannot be called inside a coroutine created by the script; call it from the callback itself")
	}
	if yieldForbidden(L) {
		return fmt.Errorf("cannot be called inside table.sort, gsub or a metamethod")
	}
	return nil
}

const regPcallPool = "luahost.pcallpool"

// Done is the marker a worker coroutine yields first when its function
// returned; any other first value is a yield from inside the function.
var doneMarker = &lua.LUserData{}

// WorkerLoop compiles the worker coroutine body for L (see workerSrc).
func WorkerLoop(L *lua.LState) (*lua.LFunction, lua.LValue) {
	fn := helper(L, "worker", workerSrc)
	L.Push(fn)
	L.Push(L.GetField(L.GetGlobal("coroutine"), "yield"))
	L.Push(doneMarker)
	L.Call(2, 1)
	loop := L.Get(-1).(*lua.LFunction)
	L.Pop(1)
	return loop, doneMarker
}

// IsDone reports whether v is the first value a worker yields on return.
func IsDone(v lua.LValue) bool { return v == doneMarker }

func installPcall(L *lua.LState) {
	loop, done := WorkerLoop(L)
	pool := &coPool{loop: loop, done: done, fresh: map[*lua.LState]bool{}, engine: map[*lua.LState]bool{},
		compiling: make(chan struct{}, 1)}
	ud := L.NewUserData()
	ud.Value = pool
	L.G.Registry.RawSetString(regPcallPool, ud)

	take := L.NewFunction(func(L *lua.LState) int {
		var co *lua.LState
		if n := len(pool.idle); n > 0 {
			co = pool.idle[n-1]
			pool.idle = pool.idle[:n-1]
		} else {
			var cancel context.CancelFunc
			co, cancel = L.NewThread()
			if cancel != nil {
				// The thread's own child context would keep a goroutine
				// alive until the runtime's context ends; resume sets the
				// context it runs under.
				cancel()
			}
			pool.fresh[co] = true
			pool.engine[co] = true
		}
		L.Push(co)
		return 1
	})
	// resume(co, ...) → 0, results (returned) | 1, err (raised) | 2, yielded values
	resume := L.NewFunction(func(L *lua.LState) int {
		co := L.CheckThread(1)
		if pool.depth >= MaxCoroutineNesting {
			if len(pool.idle) < 64 { // unused: keep it for the next pcall
				pool.idle = append(pool.idle, co)
			} else {
				delete(pool.fresh, co)
				delete(pool.engine, co)
			}
			L.Push(lua.LNumber(1))
			L.Push(lua.LString(nestingMsg))
			return 2
		}
		pool.depth++
		defer func() { pool.depth-- }()
		if ctx := L.Context(); ctx != nil {
			if err := ctx.Err(); err != nil {
				L.RaiseError("%s", err.Error())
			}
			co.SetContext(ctx)
		} else {
			co.RemoveContext()
		}
		args := make([]lua.LValue, 0, L.GetTop()-1)
		fresh := pool.fresh[co]
		for i := 2; i <= L.GetTop(); i++ {
			args = append(args, L.Get(i))
		}
		var st lua.ResumeState
		var err error
		var vals []lua.LValue
		if fresh {
			delete(pool.fresh, co)
			st, err, vals = ResumeGuarded(L, co, pool.loop, args)
		} else {
			st, err, vals = ResumeGuarded(L, co, nil, args)
		}
		switch {
		case st == lua.ResumeError:
			delete(pool.engine, co) // dead: never reused
			L.Push(lua.LNumber(1))
			L.Push(ErrorValue(err))
			return 2
		case len(vals) > 0 && vals[0] == pool.done:
			if len(pool.idle) < 64 {
				pool.idle = append(pool.idle, co)
			} else {
				delete(pool.engine, co)
			}
			L.Push(lua.LNumber(0))
			for _, v := range vals[1:] {
				L.Push(v)
			}
			return len(vals)
		default:
			if yieldForbidden(L) {
				delete(pool.engine, co)
				L.Push(lua.LNumber(1))
				L.Push(lua.LString("attempt to yield across a Go-call boundary (a host call inside table.sort, gsub or a metamethod)"))
				return 2
			}
			L.Push(lua.LNumber(2))
			for _, v := range vals {
				L.Push(v)
			}
			return len(vals) + 1
		}
	})
	fn := helper(L, "pcall", pcallSrc)
	L.Push(fn)
	L.Push(resume)
	L.Push(take)
	L.Push(L.GetField(L.GetGlobal("coroutine"), "yield"))
	L.Call(3, 2)
	L.G.Global.RawSetString("pcall", L.Get(-2))
	L.G.Global.RawSetString("xpcall", L.Get(-1))
	L.Pop(2)
}

// ResumeGuarded resumes co (a pcall or worker coroutine) and turns a Go
// panic inside it into an error. An error raised in a Go builtin that
// the engine's helper called directly (pcall(json.decode, s)) is made to
// point at the script line that called it, not at the helper; a stack
// overflow names the innermost script line.
func ResumeGuarded(L, co *lua.LState, fn *lua.LFunction, args []lua.LValue) (st lua.ResumeState, err error, vals []lua.LValue) {
	defer func() {
		if r := recover(); r != nil {
			st, err, vals = lua.ResumeError, fmt.Errorf("internal error: %v", r), nil
		}
		if st == lua.ResumeError {
			err = scriptPosition(L, co, args, err)
		}
	}()
	return L.Resume(co, fn, args...)
}

// callVar is the variable the worker loop calls a function through:
// gopher-lua names it in "bad argument #1 to __call".
const callVar = "__call"

var (
	helperPrefix  = regexp.MustCompile(`^<[^>]*>:\d+:\s*`)
	stackOverflow = regexp.MustCompile(`^(?:\S+:\d+:\s*)?(?:lua callstack overflow|stack overflow)$`)
)

// scriptPosition rewrites a raised error as described at ResumeGuarded.
func scriptPosition(L, co *lua.LState, args []lua.LValue, err error) error {
	msg, ok := ErrorValue(err).(lua.LString)
	if !ok {
		return err
	}
	text := string(msg)
	switch {
	case stackOverflow.MatchString(text):
		// gopher-lua panics with a bare "lua callstack overflow" once the
		// frames run out; the dead coroutine's frames still show where.
		text = fmt.Sprintf("stack overflow (more than %d nested calls)", CallStackSize)
		if w := innermostScript(co); w != "" {
			text = w + " " + text
		}
	case helperPrefix.MatchString(text):
		text = helperPrefix.ReplaceAllString(text, "")
		if w := ScriptWhere(L); w != "" {
			text = w + " " + text
		}
	default:
		return err
	}
	if strings.Contains(text, " to "+callVar+" ") {
		name := "?"
		if len(args) > 0 {
			if n := FuncName(L, args[0]); n != "" {
				name = n
			}
		}
		text = strings.Replace(text, " to "+callVar+" ", " to "+name+" ", 1)
	}
	return &lua.ApiError{Type: lua.ApiErrorRun, Object: lua.LString(text)}
}

// innermostScript is the position of the deepest script frame of th, a
// coroutine that died raising (its frames are still there).
func innermostScript(th *lua.LState) string {
	for level := 0; level < 16; level++ {
		if _, ok := th.GetStack(level); !ok {
			break
		}
		if w := th.Where(level); w != "" && !strings.HasPrefix(w, "<") && !strings.HasPrefix(w, "[G]") {
			return w
		}
	}
	return ""
}

const regLibs = "luahost.libs"

// NameLibrary records that t is known to scripts as name (a library a
// script required, or a global table), so errors can name its functions.
func NameLibrary(L *lua.LState, name string, t lua.LValue) {
	libs, ok := L.G.Registry.RawGetString(regLibs).(*lua.LTable)
	if !ok {
		libs = L.NewTable()
		L.G.Registry.RawSetString(regLibs, libs)
	}
	if _, isTable := t.(*lua.LTable); isTable {
		libs.RawSetString(name, t)
	}
}

// FuncName is the name scripts know fn by ("json.decode", "string.rep",
// "pairs"), or "" when it has none. It searches; call it on errors only.
func FuncName(L *lua.LState, fn lua.LValue) string {
	if _, ok := fn.(*lua.LFunction); !ok {
		return ""
	}
	name := ""
	find := func(prefix string, t *lua.LTable, nested bool) {
		t.ForEach(func(k, v lua.LValue) {
			key := lua.LVAsString(k)
			if name != "" || strings.HasPrefix(key, "__") {
				return
			}
			if !nested && v == fn {
				name = prefix + key
			}
			if sub, ok := v.(*lua.LTable); ok && nested {
				sub.ForEach(func(k2, v2 lua.LValue) {
					if name == "" && v2 == fn {
						name = prefix + key + "." + lua.LVAsString(k2) // api.store.get
					}
				})
			}
		})
	}
	libs, _ := L.G.Registry.RawGetString(regLibs).(*lua.LTable)
	for _, nested := range []bool{false, true} {
		if libs != nil {
			libs.ForEach(func(k, v lua.LValue) {
				if t, ok := v.(*lua.LTable); ok && name == "" {
					find(lua.LVAsString(k)+".", t, nested)
				}
			})
		}
		if name == "" && !nested {
			find("", L.G.Global, false)
		}
	}
	return name
}

// ErrorValue is the Lua value a raised error carried.
func ErrorValue(err error) lua.LValue {
	if ae, ok := err.(*lua.ApiError); ok {
		return ae.Object
	}
	return lua.LString(err.Error())
}

// Compile parses and compiles a script once; the result can be loaded
// into any number of states. name is the chunk name errors show
// ("spam/list_spam.lua"). The source is checked first (see checkSource):
// nesting past Lua 5.1's limit is a syntax error, never a stack overflow.
func Compile(src []byte, name string) (*lua.FunctionProto, error) {
	return CompileContext(context.Background(), src, name)
}

// CompileContext is Compile that stops checking and parsing once ctx
// ends (gopher-lua's compile step itself cannot be interrupted; the
// check bounds its work).
func CompileContext(ctx context.Context, src []byte, name string) (proto *lua.FunctionProto, err error) {
	checkErr := checkSource(ctx, src, name)
	if checkErr != nil && !errors.Is(checkErr, errCheckSyntax) {
		return nil, checkErr
	}
	var chunk []ast.Stmt
	chunk, err = parse.Parse(&ctxReader{ctx: ctx, src: src}, name)
	if err != nil {
		var stop ctxStop
		if errors.As(err, &stop) {
			return nil, stop.err
		}
		return nil, syntaxError(name, src, err)
	}
	if checkErr != nil {
		// The checker follows gopher-lua's grammar; if it could not, the
		// tree's depth is unknown and compiling it might overflow.
		return nil, fmt.Errorf("%s: luahost's nesting check could not follow this source although it parses (a luahost bug: please report it with the file)", name)
	}
	defer func() {
		if p := recover(); p != nil {
			proto, err = nil, fmt.Errorf("%s: compile: %v", name, p)
		}
	}()
	proto, err = lua.Compile(chunk, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	trim(proto)
	return proto, nil
}

// trim gives a compiled chunk's tables their exact size: gopher-lua's
// compiler leaves each function's code and debug tables in buffers of
// 16 to 1,024 entries (12 KB a function, kept as long as the chunk lives).
func trim(p *lua.FunctionProto) {
	p.Code = append([]uint32(nil), p.Code...)
	p.Constants = append([]lua.LValue(nil), p.Constants...)
	p.FunctionPrototypes = append([]*lua.FunctionProto(nil), p.FunctionPrototypes...)
	p.DbgSourcePositions = append([]int(nil), p.DbgSourcePositions...)
	p.DbgLocals = append([]*lua.DbgLocalInfo(nil), p.DbgLocals...)
	p.DbgCalls = append([]lua.DbgCall(nil), p.DbgCalls...)
	p.DbgUpvalues = append([]string(nil), p.DbgUpvalues...)
	for _, child := range p.FunctionPrototypes {
		trim(child)
	}
}

var (
	parseLine = regexp.MustCompile(`line:(\d+)\(column:\d+\) near '([^']*)':\s*(.*)`)
	parseEOF  = regexp.MustCompile(`at EOF:\s*(.*)`)
)

// syntaxError rewrites gopher-lua's parse error ("name line:3(column:5)
// near 'x': syntax error", or "name at EOF: syntax error") into Lua's
// "name:3: syntax error near 'x'".
func syntaxError(name string, src []byte, err error) error {
	msg := err.Error()
	if m := parseLine.FindStringSubmatch(msg); m != nil {
		reason := strings.TrimSpace(m[3])
		if reason == "" {
			reason = "syntax error"
		}
		return fmt.Errorf("%s:%s: %s near '%s'", name, m[1], reason, m[2])
	}
	if m := parseEOF.FindStringSubmatch(msg); m != nil {
		reason := strings.TrimSpace(m[1])
		if reason == "" {
			reason = "syntax error"
		}
		return fmt.Errorf("%s:%d: %s near <eof>", name, bytes.Count(src, []byte("\n"))+1, reason)
	}
	return fmt.Errorf("%s: %s", name, msg)
}

// Loader resolves require() for one module state: module_api, then
// name.lua in the module's own folder, then the stdlib libraries.
type Loader struct {
	FS  fs.FS  // the module's files
	Dir string // the module's folder inside FS ("." or "spam")
	API lua.LValue
	// Libraries are the embedder's Go libraries, by name.
	Libraries map[string]lua.LValue
	Env       *stdlib.Env
	// OnFile is told about every local file require looks for, with its
	// content (nil when it does not exist): reload watches them.
	OnFile func(path string, src []byte)
	loaded map[string]lua.LValue
	protos map[string]*lua.FunctionProto
}

var validModName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// Install sets the global require on L.
func (ld *Loader) Install(L *lua.LState) {
	ld.loaded = map[string]lua.LValue{}
	ld.protos = map[string]*lua.FunctionProto{}
	L.G.Global.RawSetString("require", L.NewFunction(ld.require))
}

func (ld *Loader) require(L *lua.LState) int {
	name := L.CheckString(1)
	if v, ok := ld.loaded[name]; ok {
		L.Push(v)
		return 1
	}
	if name == "module_api" && ld.API != nil {
		NameLibrary(L, "api", ld.API)
		L.Push(ld.API)
		return 1
	}
	if !validModName.MatchString(name) {
		L.ArgError(1, fmt.Sprintf("invalid module name %q (use names like \"helpers\" or \"lib.helpers\")", Clip(name)))
	}
	file := path.Join(ld.Dir, strings.ReplaceAll(name, ".", "/")+".lua")
	src, err := fs.ReadFile(ld.FS, file)
	if ld.OnFile != nil {
		ld.OnFile(file, src)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// There but refused (a link out of the module's folder) or
		// unreadable: say so rather than look for a library.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		L.RaiseError("require %q: %s: %v", Clip(name), Clip(file), err)
	}
	if err == nil {
		proto, err := compileFor(L, src, file)
		if err != nil {
			L.RaiseError("require %q: %s", Clip(name), err.Error())
		}
		// Mark as loading to stop require cycles from recursing forever.
		ld.loaded[name] = lua.LTrue
		fn := L.NewFunctionFromProto(proto)
		L.Push(fn)
		L.Push(lua.LString(name))
		L.Call(1, 1)
		v := L.Get(-1)
		L.Pop(1)
		if v == lua.LNil {
			v = lua.LTrue
		}
		ld.loaded[name] = v
		L.Push(v)
		return 1
	}
	if v, ok := ld.Libraries[name]; ok {
		NameLibrary(L, name, v)
		ld.loaded[name] = v
		L.Push(v)
		return 1
	}
	if lib, ok := stdlib.Lookup(name); ok {
		v := lib(L, ld.Env)
		NameLibrary(L, name, v)
		ld.loaded[name] = v
		L.Push(v)
		return 1
	}
	L.RaiseError("module %q not found: no file %s and no library of that name (libraries: %s)",
		Clip(name), Clip(file), strings.Join(append([]string{"module_api"}, stdlib.Names()...), ", "))
	return 0
}

// The engine's own Lua helpers (pcall, the worker loop, the host-call
// wrapper) are compiled once per process: a compiled chunk is read-only
// and serves every state, where compiling per state kept ~140 KB per
// module alive.
var (
	helpersMu sync.Mutex
	helpers   = map[string]*lua.FunctionProto{}
)

// Helper returns a function of L running a helper chunk of the engine's
// own, compiled once per process under name (src must be the same for a
// name).
func Helper(L *lua.LState, name, src string) *lua.LFunction { return helper(L, name, src) }

// helper returns a function of L running the named helper chunk.
func helper(L *lua.LState, name, src string) *lua.LFunction {
	helpersMu.Lock()
	proto, ok := helpers[name]
	if !ok {
		chunk, err := parse.Parse(strings.NewReader(src), "<"+name+">")
		if err == nil {
			proto, err = lua.Compile(chunk, "<"+name+">")
		}
		if err == nil {
			trim(proto)
		}
		if err != nil {
			helpersMu.Unlock()
			panic("luahost: helper " + name + ": " + err.Error())
		}
		helpers[name] = proto
	}
	helpersMu.Unlock()
	return L.NewFunctionFromProto(proto)
}
