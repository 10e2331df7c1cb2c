package sandbox

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// HostCall is what a yielding host function hands the engine: work to
// run off the owner goroutine, and then the values to resume the script
// with. To the script the call looks synchronous.
type HostCall struct {
	Name string // the host function, e.g. "get_profile_for_user"
	// Where is the calling script position, "spam.lua:12:"; Position()
	// finds it when first needed (it costs ~1 µs, most calls never do).
	Where string
	th    *lua.LState // the parked coroutine
	// Run does the work off the state's baton; it must honour ctx (the
	// invocation's deadline). It must not touch the Lua state.
	Run func(ctx context.Context) (Result, error)
	// Inline marks work that is known to return once ctx is done (the
	// engine's own stores and timers): the runtime runs it on the calling
	// goroutine instead of one of its own.
	Inline bool
	// MapErr, when set, rewrites Run's error before the script sees it.
	MapErr func(error) error
}

// Position is the calling script's position. While the call is parked
// its coroutine still stands at the calling line. Loop goroutine only.
func (hc *HostCall) Position() string {
	if hc.Where == "" && hc.th != nil {
		hc.Where = ScriptWhere(hc.th)
	}
	return hc.Where
}

// Result builds the values a host call returns to the script; the engine
// calls it on the state's owner goroutine.
type Result func(L *lua.LState) []lua.LValue

// HostCallOf returns the host call a worker yielded, if it is one.
func HostCallOf(v lua.LValue) (*HostCall, bool) {
	ud, ok := v.(*lua.LUserData)
	if !ok {
		return nil, false
	}
	hc, ok := ud.Value.(*HostCall)
	return hc, ok
}

// finishSrc turns the values the engine resumes a host call with into a
// return (true, results...) or an error raised at the calling line
// (false, err): a Go function cannot raise after it has yielded.
const finishSrc = `
local error = error
local function finish(ok, ...)
  if ok then return ... end
  error((...), 0)
end
return function(g) return function(...) return finish(g(...)) end end
`

const regWrap = "luahost.hostwrap"

// HostFunction makes a script-visible host function from prepare, which
// checks the arguments on the owner goroutine (raising argument errors at
// once) and returns the call to run. The function yields the script's
// coroutine while Run works, so other calls of the module proceed.
func HostFunction(L *lua.LState, name string, prepare func(L *lua.LState) *HostCall) lua.LValue {
	g := L.NewFunction(func(L *lua.LState) int {
		hc := prepareAtScript(L, name, prepare)
		if hc.Name == "" {
			hc.Name = name
		}
		if err := CanYield(L); err != nil {
			RaiseAtScript(L, "%s: %s", name, err.Error())
		}
		hc.th = L
		ud := L.NewUserData()
		ud.Value = hc
		return L.Yield(ud)
	})
	wrap, ok := L.G.Registry.RawGetString(regWrap).(*lua.LFunction)
	if !ok {
		fn := helper(L, "hostcall", finishSrc)
		L.Push(fn)
		L.Call(0, 1)
		wrap = L.Get(-1).(*lua.LFunction)
		L.Pop(1)
		L.G.Registry.RawSetString(regWrap, wrap)
	}
	L.Push(wrap)
	L.Push(g)
	L.Call(1, 1)
	v := L.Get(-1)
	L.Pop(1)
	return v
}

// ResumeValues are the values the engine resumes a host call's coroutine
// with: (true, results...) on success, (false, error) on failure, the
// error naming the host function and the calling line.
// They are appended to dst (a caller's scratch slice: Resume copies them).
func ResumeValues(L *lua.LState, hc *HostCall, res Result, err error, dst []lua.LValue) []lua.LValue {
	if err != nil && hc.MapErr != nil {
		err = hc.MapErr(err)
	}
	if err != nil {
		if le, ok := err.(*LuaError); ok {
			return append(dst, lua.LFalse, le.Value(L))
		}
		return append(dst, lua.LFalse, lua.LString(strings.TrimSpace(fmt.Sprintf("%s %s: %s", hc.Position(), hc.Name, err.Error()))))
	}
	dst = append(dst, lua.LTrue)
	if res != nil {
		dst = append(dst, res(L)...)
	}
	return dst
}

// ResultError, panicked from a Result, fails the host call with Err (the
// script sees "<name>: <Err>" at its calling line).
type ResultError struct{ Err error }

func (e ResultError) Error() string { return e.Err.Error() }

// LuaError is an error a host call raises as a Lua value (a table such as
// an HttpResponseException) rather than a string.
type LuaError struct {
	Msg   string
	Value func(L *lua.LState) lua.LValue
}

func (e *LuaError) Error() string { return e.Msg }

// ScriptWhere is the position ("file.lua:12:") of the innermost script
// frame calling into Go, skipping the engine's own Lua helpers (the pcall
// and host-call wrappers, named "<pcall>", "<worker>", "<hostcall>").
func ScriptWhere(L *lua.LState) string {
	// Through pcall the script's frame is in a parent coroutine.
	for th, depth := L, 0; th != nil && depth < 8; th, depth = th.Parent, depth+1 {
		for level := 1; level < 16; level++ {
			if _, ok := th.GetStack(level); !ok {
				break
			}
			if w := th.Where(level); w != "" && !strings.HasPrefix(w, "<") {
				return w
			}
		}
	}
	return ""
}

// RaiseAtScript raises a Lua error positioned at the calling script line
// (not at the engine's helper chunks).
func RaiseAtScript(L *lua.LState, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if w := ScriptWhere(L); w != "" {
		msg = w + " " + msg
	}
	L.Error(lua.LString(msg), 0)
}

var helperPos = regexp.MustCompile(`^<[^>]*>:\d+:\s*`)

// prepareAtScript runs prepare and re-points its argument errors at the
// script's line: raised inside the engine's wrapper they would read
// "<hostcall>:7: bad argument #1 to g".
func prepareAtScript(L *lua.LState, name string, prepare func(*lua.LState) *HostCall) (hc *HostCall) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		ae, ok := p.(*lua.ApiError)
		if !ok {
			panic(p)
		}
		msg, ok := ae.Object.(lua.LString)
		if !ok || !helperPos.MatchString(string(msg)) {
			panic(p)
		}
		text := helperPos.ReplaceAllString(string(msg), "")
		text = strings.Replace(text, " to g ", " to "+name+" ", 1)
		RaiseAtScript(L, "%s", text)
	}()
	return prepare(L)
}

// MethodTolerant lets api.f(x) and api:f(x) both work (a common slip).
func MethodTolerant(self *lua.LTable, fn lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if L.GetTop() > 0 && L.Get(1) == self {
			L.Remove(1)
		}
		return fn(L)
	}
}

// MaxEcho is how much of a value from a script, a request or a file an
// error message repeats.
const MaxEcho = 200

// Clip cuts s to MaxEcho bytes for an error message, saying how long it
// was: a 100 KB argument must not come back whole in an error.
func Clip(s string) string {
	if len(s) <= MaxEcho {
		return s
	}
	return s[:MaxEcho] + fmt.Sprintf("... (%d bytes)", len(s))
}
