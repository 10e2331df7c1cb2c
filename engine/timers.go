package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/internal/sandbox"
)

// Timers: api.looping_background_call(fn, msec, ...) and
// api.delayed_background_call(msec, fn, ...). Each timer is a goroutine
// that hands the call to the module's loop like any other invocation, so
// the function runs on the module's own goroutine under the module's
// timeout. A looping call never overlaps itself (a tick that finds the
// previous run still going is skipped, as Synapse's looping calls do). An
// error is logged with its file and line and the loop goes on. Timers stop
// when the module generation is retired (reload or shutdown).

// installTimers adds the timer functions to a module's api table. g.rt is
// set before any Lua runs.
func (e *Engine) installTimers(L *lua.LState, api *lua.LTable, g *generation, in *instance, inst int) {
	// fire runs fn(args...) on the loop and logs a failure.
	fire := func(what string, fn *lua.LFunction, args []lua.LValue) {
		c := runtime.Call{What: what, Fn: fn, Timeout: g.cfg.Timeout, Args: func(*lua.LState) []lua.LValue { return args }}
		run := func(ctx context.Context) error { return scriptError(in.rt.Invoke(ctx, c)) }
		var err error
		if e.obs == nil {
			err = run(context.Background())
		} else {
			err = e.observe(context.Background(), g.cfg.Name, "api."+what, false, run)
		}
		if err != nil && !errors.Is(err, runtime.ErrClosed) {
			e.logScriptError(what+" failed", err)
		}
	}
	handle := func(L *lua.LState, cancel func()) *lua.LTable {
		h := L.NewTable()
		h.RawSetString("stop", L.NewFunction(func(L *lua.LState) int { cancel(); return 0 }))
		return h
	}
	restArgs := func(L *lua.LState, from int) []lua.LValue {
		var args []lua.LValue
		for i := from; i <= L.GetTop(); i++ {
			args = append(args, L.Get(i))
		}
		return args
	}
	// Background calls run on instance 1 only (the others' constructors
	// register the same timers: a no-op there).
	start := func(f func(quit <-chan struct{})) {
		if inst == 1 {
			in.rt.StartTimer(f)
		}
	}
	msec := func(L *lua.LState, n int) time.Duration {
		v := L.CheckNumber(n)
		if v < 0 {
			L.ArgError(n, "msec must not be negative")
		}
		return time.Duration(float64(v) * float64(time.Millisecond))
	}

	api.RawSetString("looping_background_call", L.NewFunction(sandbox.MethodTolerant(api, func(L *lua.LState) int {
		fn := L.CheckFunction(1)
		every := msec(L, 2)
		if every < time.Millisecond {
			L.ArgError(2, "the interval must be at least 1 ms")
		}
		args := restArgs(L, 3)
		cancel := make(chan struct{})
		var once sync.Once
		start(func(quit <-chan struct{}) {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-quit:
					return
				case <-cancel:
					return
				case <-tick.C:
					fire("looping_background_call", fn, args)
				}
			}
		})
		L.Push(handle(L, func() { once.Do(func() { close(cancel) }) }))
		return 1
	})))

	api.RawSetString("delayed_background_call", L.NewFunction(sandbox.MethodTolerant(api, func(L *lua.LState) int {
		after := msec(L, 1)
		fn := L.CheckFunction(2)
		args := restArgs(L, 3)
		cancel := make(chan struct{})
		var once sync.Once
		start(func(quit <-chan struct{}) {
			t := time.NewTimer(after)
			defer t.Stop()
			select {
			case <-quit:
			case <-cancel:
			case <-t.C:
				fire("delayed_background_call", fn, args)
			}
		})
		L.Push(handle(L, func() { once.Do(func() { close(cancel) }) }))
		return 1
	})))
}
