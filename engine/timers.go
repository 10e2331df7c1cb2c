package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
)

// Background work: api.looping_background_call(fn, msec, ...),
// api.delayed_background_call(msec, fn, ...) and
// api.run_as_background_process(desc, fn, ...). Each is a goroutine that
// hands the call to the module's runtime like any other invocation, so
// the function runs on the module's own state, one step at a time with
// its other work, and may call host functions. A background call runs
// under the module's background_timeout (default 10 minutes; 0: no
// deadline but the generation's end), not its callback timeout, so a
// retry loop with long sleeps runs to completion. A looping call never
// overlaps itself (a tick that finds the previous run still going is
// skipped, as Synapse's looping calls do). An error is logged with its
// file and line, and a loop goes on. Everything stops when the module
// generation is retired (reload or shutdown): a background call waiting
// in a host call (a sleep, a lookup) is cancelled there.
//
// Each takes an options table last (Synapse's keyword arguments:
// run_on_all_instances, desc; see backgroundOptions). With several luahost
// instances (background.go), a looping call, and a delayed call or
// background process that a constructor starts, run only on the instance
// that runs background tasks, unless run_on_all_instances says otherwise:
// every instance's constructor starts the same ones. One a callback starts
// later runs on the instance that started it, as that callback did.

// maxTimerDelay bounds a timer's msec: far larger values overflowed
// time.Duration into a negative delay (an immediate call).
const maxTimerDelay = 366 * 24 * time.Hour

// installTimers adds the background functions to a module's api table.
// in.rt is set before any Lua runs.
func (e *Engine) installTimers(L *lua.LState, api *luaapi.ModuleAPI, g *generation, in *instance, inst int) {
	t := api.Table
	timeout := backgroundDeadline(g.cfg.BackgroundTimeout)
	// fire runs fn(args...) on the instance and logs a failure. The call
	// is cancelled when the runtime closes (quit), so a long background
	// call parked in a host call does not hold up a reload.
	//
	// Unless o.allInstances, the call runs only while this instance runs
	// background tasks, and under a context that ends as soon as it may
	// stop doing so: the fence that keeps a task from running on two
	// instances at once.
	// It reports false once the runtime is closed.
	fire := func(quit <-chan struct{}, what string, o bgOptions, fn *lua.LFunction, args []lua.LValue) bool {
		parent := context.Background()
		if !o.allInstances {
			var ok bool
			if parent, ok = e.bg.may(); !ok {
				return true
			}
		}
		ctx, cancel := context.WithCancel(parent)
		defer cancel()
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-quit:
				cancel()
			case <-done:
			}
		}()
		c := runtime.Call{What: what, Fn: fn, Timeout: timeout, Args: func(*lua.LState) []lua.LValue { return args }}
		run := func(ctx context.Context) error { return scriptError(in.rt.Invoke(ctx, c)) }
		var err error
		if e.obs == nil {
			err = run(ctx)
		} else {
			err = e.observe(ctx, g.cfg.Name, "api."+what, false, run)
		}
		if errors.Is(err, runtime.ErrClosed) {
			return false
		}
		if err == nil {
			return true
		}
		select {
		case <-quit:
			return false // stopped with the generation: not a failure of the script
		default:
		}
		if o.desc != "" {
			what += " " + o.desc
		}
		if parent.Err() != nil {
			e.log.Warn(what+" interrupted: this instance lost the background lease", "module", g.cfg.Name)
			return true
		}
		e.logScriptError(what+" failed", err)
		return true
	}
	e.installBackground(L, t)
	handle := func(L *lua.LState, cancel func()) *lua.LTable {
		h := L.CreateTable(0, 1)
		h.RawSetString("stop", L.NewFunction(func(L *lua.LState) int { cancel(); return 0 }))
		return h
	}
	restArgs := func(L *lua.LState, from, to int) []lua.LValue {
		var args []lua.LValue
		for i := from; i <= to; i++ {
			args = append(args, L.Get(i))
		}
		return args
	}
	// While the constructors run, every instance registers the same
	// background work: instance 1's runs, the others' are no-ops. Started
	// later (from a callback), it runs on the instance that started it.
	//
	// pending counts this state's background work not yet ended: a handler
	// that started a million delayed calls held 2.9 GB until they fired.
	var pending atomic.Int64
	limit := int64(g.cfg.MaxTimers)
	if limit <= 0 {
		limit = DefaultMaxTimers
	}
	start := func(L *lua.LState, name string, f func(quit <-chan struct{})) {
		if inst != 1 && api.Registering() {
			return
		}
		if pending.Add(1) > limit {
			pending.Add(-1)
			L.RaiseError("%s: the module has %d pending timers already (its max_timers quota); stop some first", name, limit)
		}
		if !in.rt.StartTimer(func(quit <-chan struct{}) {
			defer pending.Add(-1)
			f(quit)
		}) {
			pending.Add(-1)
		}
	}
	// fakeStart is start on the fake clock of luahost test (clock.go):
	// fire runs when the test moves the clock past after, then every
	// `every` (once when 0). The handle's stop cancels it.
	fakeStart := func(after, every time.Duration, fire func() bool) func() {
		if inst != 1 && api.Registering() {
			return func() {}
		}
		return fakeTimer(e.fake, after, every, fire)
	}
	msec := func(L *lua.LState, n int) time.Duration {
		v := L.CheckNumber(n)
		if v < 0 {
			L.ArgError(n, "msec must not be negative")
		}
		if float64(v) > float64(maxTimerDelay/time.Millisecond) {
			L.ArgError(n, "msec must be at most a year")
		}
		return time.Duration(float64(v) * float64(time.Millisecond))
	}

	t.RawSetString("looping_background_call", L.NewFunction(sandbox.MethodTolerant(t, func(L *lua.LState) int {
		fn := L.CheckFunction(1)
		every := msec(L, 2)
		if every < MinLoopInterval {
			L.ArgError(2, fmt.Sprintf("the interval must be at least %d ms", MinLoopInterval/time.Millisecond))
		}
		o, last := backgroundOptions(L, 3)
		args := restArgs(L, 3, last)
		if e.fake != nil {
			L.Push(handle(L, fakeStart(every, every, func() bool { return fire(nil, "looping_background_call", o, fn, args) })))
			return 1
		}
		cancel := make(chan struct{})
		var once sync.Once
		start(L, "looping_background_call", func(quit <-chan struct{}) {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-quit:
					return
				case <-cancel:
					return
				case <-tick.C:
					fire(quit, "looping_background_call", o, fn, args)
				}
			}
		})
		L.Push(handle(L, func() { once.Do(func() { close(cancel) }) }))
		return 1
	})))

	t.RawSetString("delayed_background_call", L.NewFunction(sandbox.MethodTolerant(t, func(L *lua.LState) int {
		after := msec(L, 1)
		fn := L.CheckFunction(2)
		o, last := backgroundOptions(L, 3)
		args := restArgs(L, 3, last)
		o.allInstances = o.allInstances || !api.Registering()
		if e.fake != nil {
			L.Push(handle(L, fakeStart(after, 0, func() bool { return fire(nil, "delayed_background_call", o, fn, args) })))
			return 1
		}
		cancel := make(chan struct{})
		var once sync.Once
		start(L, "delayed_background_call", func(quit <-chan struct{}) {
			t := time.NewTimer(after)
			defer t.Stop()
			select {
			case <-quit:
			case <-cancel:
			case <-t.C:
				fire(quit, "delayed_background_call", o, fn, args)
			}
		})
		L.Push(handle(L, func() { once.Do(func() { close(cancel) }) }))
		return 1
	})))

	t.RawSetString("run_as_background_process", L.NewFunction(sandbox.MethodTolerant(t, func(L *lua.LState) int {
		desc := L.CheckString(1)
		fn := L.CheckFunction(2)
		o, last := backgroundOptions(L, 3)
		args := restArgs(L, 3, last)
		o.allInstances = o.allInstances || !api.Registering()
		if o.desc == "" {
			o.desc = desc
		}
		if e.fake != nil {
			// On the fake clock it runs at the test's next t.clock.advance
			// (advance(0) runs it now), so a test decides when.
			fakeStart(0, 0, func() bool { return fire(nil, "run_as_background_process", o, fn, args) })
			return 0
		}
		start(L, "run_as_background_process", func(quit <-chan struct{}) {
			fire(quit, "run_as_background_process", o, fn, args)
		})
		return 0
	})))
}
