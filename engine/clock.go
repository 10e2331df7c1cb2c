package engine

import (
	"context"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/clock"
	"github.com/luahost/luahost/internal/sandbox"
)

// `luahost test` runs modules on a fake clock (internal/clock), passed in
// the context given to New (internal/testhooks) so that embedders never
// see it. On it:
//
//   - api.sleep(s) returns at once and moves the clock s seconds forward
//     (running the timers that fall due meanwhile), so a test of a
//     one-minute window takes milliseconds; a sleep past the call's
//     deadline still times out, as it would for real;
//   - background calls run when the test moves the clock past their time;
//   - api.get_current_time_msec, time.now, time.now_ms, os.time() and
//     os.date() read the fake time.
//
// Without a fake clock none of this is installed: the real path is
// unchanged.

// installFakeClock replaces the timing functions of a module's state
// with ones that read and move the fake clock. Before the runtime starts.
func (e *Engine) installFakeClock(L *lua.LState, api *lua.LTable) {
	fake := e.fake
	api.RawSetString("get_current_time_msec", L.NewFunction(sandbox.MethodTolerant(api, func(L *lua.LState) int {
		L.Push(lua.LNumber(fake.Now().UnixMilli()))
		return 1
	})))
	api.RawSetString("sleep", sandbox.HostFunction(L, "sleep", func(L *lua.LState) *sandbox.HostCall {
		if L.GetTop() > 0 && L.Get(1) == api {
			L.Remove(1)
		}
		d := time.Duration(float64(L.CheckNumber(1)) * float64(time.Second))
		return &sandbox.HostCall{Inline: true, Run: func(ctx context.Context) (sandbox.Result, error) {
			if dl, ok := ctx.Deadline(); ok && d >= time.Until(dl) {
				// It would overrun its deadline for real too.
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return nil, fake.Advance(d)
		}}
	}))
	osT, ok := L.G.Global.RawGetString("os").(*lua.LTable)
	if !ok {
		return
	}
	osTime, _ := osT.RawGetString("time").(*lua.LFunction)
	osDate, _ := osT.RawGetString("date").(*lua.LFunction)
	if osTime != nil {
		osT.RawSetString("time", L.NewFunction(func(L *lua.LState) int {
			if L.GetTop() == 0 || L.Get(1) == lua.LNil {
				L.Push(lua.LNumber(fake.Now().Unix()))
				return 1
			}
			return callWith(L, osTime, L.GetTop())
		}))
	}
	if osDate != nil {
		osT.RawSetString("date", L.NewFunction(func(L *lua.LState) int {
			if L.Get(2) == lua.LNil {
				if L.GetTop() == 0 {
					L.Push(lua.LString("%c"))
				}
				L.SetTop(1)
				L.Push(lua.LNumber(fake.Now().Unix()))
			}
			return callWith(L, osDate, L.GetTop())
		}))
	}
}

// callWith calls fn with the first n arguments and returns its results.
func callWith(L *lua.LState, fn *lua.LFunction, n int) int {
	top := L.GetTop()
	L.Push(fn)
	for i := 1; i <= n; i++ {
		L.Push(L.Get(i))
	}
	L.Call(n, lua.MultRet)
	return L.GetTop() - top
}

// fakeTimer schedules a background call on the fake clock: fire runs
// after `after`, then every `every` (once when every is 0), until stop or
// until fire reports false (the module's runtime closed). stop is safe
// from any goroutine.
func fakeTimer(fake *clock.Fake, after, every time.Duration, fire func() bool) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var cancel func() bool
	var run func()
	run = func() {
		mu.Lock()
		done := stopped
		mu.Unlock()
		if done || !fire() || every == 0 {
			return
		}
		mu.Lock()
		if !stopped {
			cancel = fake.AfterFunc(every, run)
		}
		mu.Unlock()
	}
	mu.Lock()
	cancel = fake.AfterFunc(after, run)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			stopped = true
			cancel()
		}
	}
}
