package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/luaapi"
)

// runtime owns one module generation's *lua.LState. Only its loop
// goroutine touches the state: every other goroutine hands it work with
// post or invoke. Each invocation runs in a coroutine taken from a pool of
// reusable workers (a fresh coroutine costs 4-44 µs, resuming one ~0.4 µs)
// with the invocation's context as its deadline. A host call yields the
// coroutine; its Go work runs on another goroutine and posts the resume
// back to the loop, so the module serves other calls meanwhile.
type runtime struct {
	L      *lua.LState
	module string
	file   string
	log    *slog.Logger

	jobs    chan func()
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	// Loop-goroutine only:
	loop *lua.LFunction
	idle []*worker
	// pending counts host calls in flight (their goroutines); Close waits.
	pending sync.WaitGroup
}

type worker struct {
	th      *lua.LState
	started bool
}

// call is one invocation of a Lua function.
type call struct {
	ctx  context.Context
	what string // callback or handler name, for errors
	fn   *lua.LFunction
	// resolve, when fn is nil, finds the function on the loop goroutine;
	// a nil result skips the call.
	resolve func(L *lua.LState) *lua.LFunction
	// args builds the arguments on the loop goroutine.
	args func(L *lua.LState) []lua.LValue
	// ret reads the results on the loop goroutine (nil: ignore them).
	ret  func(L *lua.LState, rets []lua.LValue) error
	done chan error
	// timeout is the deadline's length, for the error message.
	timeout time.Duration
}

func newRuntime(L *lua.LState, module, file string, log *slog.Logger) *runtime {
	r := &runtime{
		L:       L,
		module:  module,
		file:    file,
		log:     log,
		jobs:    make(chan func(), 64),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	r.loop, _ = luaapi.WorkerLoop(L)
	go r.run()
	return r
}

func (r *runtime) run() {
	defer close(r.stopped)
	for {
		select {
		case job := <-r.jobs:
			job()
		case <-r.stop:
			// Drain work already queued so no caller waits forever.
			for {
				select {
				case job := <-r.jobs:
					job()
				default:
					r.L.Close()
					return
				}
			}
		}
	}
}

var errClosed = errors.New("module is closed")

// post queues f to run on the loop goroutine. Safe from any goroutine; it
// reports false when the runtime has stopped.
func (r *runtime) post(f func()) bool {
	select {
	case <-r.stop:
		return false
	default:
	}
	select {
	case r.jobs <- f:
		return true
	case <-r.stop:
		return false
	}
}

// close stops the loop after host calls in flight have returned, and
// frees the state. Safe from any goroutine except the loop.
func (r *runtime) close() {
	r.once.Do(func() {
		r.pending.Wait()
		close(r.stop)
		<-r.stopped
	})
}

// invoke runs c on the loop goroutine and waits for its result or its
// deadline. Safe from any goroutine except the loop.
func (r *runtime) invoke(c *call) error {
	if !r.post(func() { r.start(c) }) {
		return errClosed
	}
	select {
	case err := <-c.done:
		return err
	case <-c.ctx.Done():
		// The loop notices the deadline itself within ~0.1 ms and reports
		// where the script was; wait briefly for that better message.
		select {
		case err := <-c.done:
			return err
		case <-time.After(50 * time.Millisecond):
			return r.timeoutError(c, "")
		}
	}
}

func (r *runtime) take() *worker {
	if n := len(r.idle); n > 0 {
		w := r.idle[n-1]
		r.idle = r.idle[:n-1]
		return w
	}
	th, _ := r.L.NewThread()
	luaapi.MarkEngineThread(r.L, th, true)
	return &worker{th: th}
}

func (r *runtime) retire(w *worker) {
	luaapi.MarkEngineThread(r.L, w.th, false)
}

// start begins c on a worker coroutine. Loop goroutine only.
func (r *runtime) start(c *call) {
	if err := c.ctx.Err(); err != nil {
		c.done <- r.timeoutError(c, "")
		return
	}
	if c.fn == nil {
		if err := guard(func() { c.fn = c.resolve(r.L) }); err != nil {
			c.done <- r.wrap(c, err)
			return
		}
		if c.fn == nil {
			c.done <- nil
			return
		}
	}
	w := r.take()
	w.th.SetContext(c.ctx)
	var args []lua.LValue
	if err := guard(func() { args = c.args(r.L) }); err != nil {
		r.idle = append(r.idle, w)
		c.done <- r.wrap(c, err)
		return
	}
	vals := make([]lua.LValue, 0, len(args)+1)
	vals = append(vals, c.fn)
	vals = append(vals, args...)
	var st lua.ResumeState
	var err error
	var rets []lua.LValue
	if w.started {
		st, err, rets = luaapi.ResumeGuarded(r.L, w.th, nil, vals)
	} else {
		w.started = true
		st, err, rets = luaapi.ResumeGuarded(r.L, w.th, r.loop, vals)
	}
	r.step(c, w, st, err, rets)
}

// step handles what a worker did after a resume. Loop goroutine only.
func (r *runtime) step(c *call, w *worker, st lua.ResumeState, err error, rets []lua.LValue) {
	if st == lua.ResumeError {
		r.retire(w)
		c.done <- r.scriptError(c, w.th, err)
		return
	}
	if st == lua.ResumeOK || len(rets) == 0 {
		// The worker loop never returns; a coroutine that did is unusable.
		r.retire(w)
		c.done <- fmt.Errorf("module %q: %s: worker coroutine ended unexpectedly", r.module, c.what)
		return
	}
	if luaapi.IsDone(rets[0]) {
		w.th.RemoveContext()
		if len(r.idle) < 256 {
			r.idle = append(r.idle, w)
		} else {
			r.retire(w)
		}
		var rerr error
		if c.ret != nil {
			if gerr := guard(func() { rerr = c.ret(r.L, rets[1:]) }); gerr != nil {
				rerr = r.wrap(c, gerr)
			}
		}
		c.done <- rerr
		return
	}
	hc, ok := luaapi.HostCallOf(rets[0])
	if !ok {
		r.retire(w)
		c.done <- fmt.Errorf("module %q (%s): %s: coroutine.yield called outside a coroutine", r.module, r.file, c.what)
		return
	}
	r.pending.Add(1)
	go func() {
		defer r.pending.Done()
		var res luaapi.Result
		herr := guard(func() {
			var err error
			res, err = hc.Run(c.ctx)
			if err != nil {
				panic(hostErr{err})
			}
		})
		if he, ok := herr.(hostErr); ok {
			herr = he.err
		}
		posted := r.post(func() {
			if c.ctx.Err() != nil {
				// The caller has given up: abandon the coroutine and drop
				// the late result.
				r.retire(w)
				c.done <- r.timeoutError(c, hc.Where)
				return
			}
			var vals []lua.LValue
			if err := guard(func() { vals = luaapi.ResumeValues(r.L, hc, res, herr) }); err != nil {
				vals = []lua.LValue{lua.LFalse, lua.LString(fmt.Sprintf("%s %s: %v", hc.Where, hc.Name, err))}
			}
			st, err, rets := luaapi.ResumeGuarded(r.L, w.th, nil, vals)
			r.step(c, w, st, err, rets)
		})
		if !posted {
			c.done <- errClosed
		}
	}()
}

type hostErr struct{ err error }

func (h hostErr) Error() string { return h.err.Error() }

// guard runs f, turning a Go panic into an error (a Lua raise inside f
// arrives as a panic carrying *lua.ApiError).
func guard(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			switch v := p.(type) {
			case hostErr:
				err = v
			case *lua.ApiError:
				err = v
			case error:
				err = fmt.Errorf("internal error: %w", v)
			default:
				err = fmt.Errorf("internal error: %v", v)
			}
		}
	}()
	f()
	return nil
}

// ScriptError is an error raised by (or a deadline hit in) a module's
// script. Error() reads like
// `module "list_spam" (spam/list_spam.lua:14): check_event_for_spam: attempt to index a nil value`.
type ScriptError struct {
	Module   string
	Callback string
	File     string // script file of the error position
	Line     int    // 0 when unknown
	Msg      string
	// Traceback is the Lua stack for the log; never shown to clients.
	Traceback string
	Timeout   bool
	// Value is the *luaapi.SynapseError or *luaapi.ConfigError the script
	// raised, if it raised one.
	Value error
}

func (e *ScriptError) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("module %q (%s): %s: %s", e.Module, pos, e.Callback, e.Msg)
}

func (e *ScriptError) Unwrap() error { return e.Value }

var posPrefix = regexp.MustCompile(`^([^\s:]+\.lua):(\d+):\s?`)

// scriptError builds a ScriptError from a failed resume.
func (r *runtime) scriptError(c *call, th *lua.LState, err error) error {
	val := luaapi.ErrorValue(err)
	se := &ScriptError{Module: r.module, Callback: c.what, File: r.file}
	if v := luaapi.ScriptError(r.L, val); v != nil {
		se.Value = v
		se.Msg = v.Error()
		where := ""
		switch v := v.(type) {
		case *luaapi.SynapseError:
			where = v.Where
		case *luaapi.ConfigError:
			where = v.Where
			se.Msg = v.Msg
		}
		se.File, se.Line = splitWhere(where, r.file)
	} else {
		msg := lua.LVAsString(val)
		if val.Type() == lua.LTTable || val.Type() == lua.LTUserData {
			msg = "error object: " + luaToString(r.L, val)
		}
		if m := posPrefix.FindStringSubmatch(msg); m != nil {
			se.File = m[1]
			se.Line, _ = strconv.Atoi(m[2])
			msg = msg[len(m[0]):]
		}
		se.Msg = msg
		if c.ctx.Err() != nil && (strings.Contains(msg, context.DeadlineExceeded.Error()) || strings.Contains(msg, context.Canceled.Error())) {
			se.Timeout = true
			se.Msg = fmt.Sprintf("timed out after %s (still running at this line)", c.timeout)
		}
	}
	se.Traceback = traceback(th)
	return se
}

func (r *runtime) timeoutError(c *call, where string) error {
	file, line := splitWhere(where, r.file)
	return &ScriptError{Module: r.module, Callback: c.what, File: file, Line: line, Timeout: true,
		Msg: fmt.Sprintf("timed out after %s", c.timeout)}
}

// wrap names the module in a Go-side error of an invocation.
func (r *runtime) wrap(c *call, err error) error {
	if ae, ok := err.(*lua.ApiError); ok {
		return r.scriptError(c, r.L, ae)
	}
	return fmt.Errorf("module %q: %s: %w", r.module, c.what, err)
}

func splitWhere(where, def string) (string, int) {
	if m := posPrefix.FindStringSubmatch(strings.TrimSpace(where) + " "); m != nil {
		n, _ := strconv.Atoi(m[2])
		return m[1], n
	}
	return def, 0
}

func luaToString(L *lua.LState, v lua.LValue) string {
	if fn := L.GetMetaField(v, "__tostring"); fn != lua.LNil {
		var s string
		_ = guard(func() {
			L.Push(fn)
			L.Push(v)
			L.Call(1, 1)
			s = L.ToString(-1)
			L.Pop(1)
		})
		if s != "" {
			return s
		}
	}
	return v.String()
}

// traceback walks a dead coroutine's frames (they survive the error).
func traceback(th *lua.LState) string {
	var b strings.Builder
	_ = guard(func() {
		for level := 0; level < 32; level++ {
			dbg, ok := th.GetStack(level)
			if !ok {
				break
			}
			if _, err := th.GetInfo("Sln", dbg, lua.LNil); err != nil {
				break
			}
			if dbg.CurrentLine <= 0 || strings.HasPrefix(dbg.Source, "<") {
				continue
			}
			name := dbg.Name
			if name == "" {
				name = "?"
			}
			fmt.Fprintf(&b, "\n\t%s:%d: in %s", dbg.Source, dbg.CurrentLine, name)
		}
	})
	if b.Len() == 0 {
		return ""
	}
	return "stack traceback:" + b.String()
}
