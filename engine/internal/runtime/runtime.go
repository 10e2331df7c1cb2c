// Package runtime runs a module's Lua state: it owns the state, runs
// invocations in pooled worker coroutines under deadlines, parks them
// while host calls work, and interrupts calls past their deadline.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
)

// runtime owns one module generation's *lua.LState. Only its loop
// goroutine touches the state: every other goroutine hands it work with
// post or invoke. Each invocation runs in a coroutine taken from a pool of
// reusable workers (a fresh coroutine costs 4-44 µs, resuming one ~0.4 µs)
// under the invocation's deadline. A host call yields the coroutine; its
// Go work runs on another goroutine and posts the resume back to the loop,
// so the module serves other calls meanwhile.
//
// Deadlines: a context per call with its own timer costs ~1 µs, as much as
// the rest of a callback. Instead the worker coroutines share the
// runtime's loop context, and the process-wide watchdog cancels it when
// the call that is running on the loop passes its deadline; the loop then
// starts a fresh loop context. A parked call (waiting on a host call) is
// not running: its host work gets a real context with the call's deadline.
type Runtime struct {
	L      *lua.LState
	module string
	file   string
	log    *slog.Logger

	jobs    chan job
	mu      sync.RWMutex // guards closed against post
	closed  bool
	stopped chan struct{}
	once    sync.Once

	ctx     atomic.Pointer[loopCtx]
	waiters atomic.Int32 // callers blocked in invoke without a context
	// running is the call on the loop right now (nil when idle), for the
	// watchdog; wdmu orders its check against the loop's changes.
	wdmu     sync.Mutex
	running  *call
	deadline time.Time

	// Loop-goroutine only:
	loop *lua.LFunction
	idle []*worker
	// pending counts host calls in flight (their goroutines); close waits.
	pending sync.WaitGroup
	// timers are the module's background calls; close stops them first.
	timers *timers
}

type job struct {
	c *call
	f func()
}

type worker struct {
	th      *lua.LState
	ctx     *loopCtx
	started bool
}

// Call is one invocation of a Lua function.
type Call struct {
	What string // callback or handler name, for errors
	Fn   *lua.LFunction
	// Resolve, when Fn is nil, finds the function with the state in hand;
	// a nil result skips the call.
	Resolve func(L *lua.LState) *lua.LFunction
	// Args builds the arguments with the state in hand.
	Args func(L *lua.LState) []lua.LValue
	// Ret reads the results with the state in hand (nil: ignore them).
	Ret func(L *lua.LState, rets []lua.LValue) error
	// Timeout is the call's deadline from when it is queued.
	Timeout time.Duration
}

// call is a Call in flight.
type call struct {
	Call
	parent   context.Context // the caller's context (cancellation)
	deadline time.Time
	done     chan error
	// claim decides who finishes the call, exactly once: the loop, the
	// caller whose context ended, or the deadline timer of a parked call.
	claim int32
	// parked is set (on the loop) once the call waited on a host call; such
	// a call may be finished late by its timer and is never pooled.
	parked bool
	timer  *time.Timer
	// hctx bounds the call's host work by its deadline; made on the first
	// host call and shared by the next ones (a context costs ~1 µs).
	hctx    context.Context
	hcancel context.CancelFunc
}

const (
	claimLoop   = 1
	claimCaller = 2
)

var callPool = sync.Pool{New: func() any { return &call{done: make(chan error, 1)} }}

// loopCtx is the context the worker coroutines run under. The watchdog
// cancels it to interrupt the running call.
type loopCtx struct {
	done chan struct{}
	once sync.Once
}

func newLoopCtx() *loopCtx { return &loopCtx{done: make(chan struct{})} }

func (c *loopCtx) cancel()                     { c.once.Do(func() { close(c.done) }) }
func (c *loopCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *loopCtx) Done() <-chan struct{}       { return c.done }
func (c *loopCtx) Value(any) any               { return nil }
func (c *loopCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// Options name the module a runtime serves, for errors and logs.
type Options struct {
	Module string // the module's name
	File   string // its script, as errors show it
	Log    *slog.Logger
}

// New starts a runtime for L, which it owns from now on.
func New(L *lua.LState, o Options) *Runtime {
	module, file, log := o.Module, o.File, o.Log
	if log == nil {
		log = slog.Default()
	}
	r := &Runtime{
		L:       L,
		module:  module,
		file:    file,
		log:     log,
		jobs:    make(chan job, 64),
		stopped: make(chan struct{}),
		timers:  newTimers(),
	}
	r.ctx.Store(newLoopCtx())
	r.loop, _ = sandbox.WorkerLoop(L)
	watch.add(r)
	go r.run()
	return r
}

func (r *Runtime) run() {
	defer close(r.stopped)
	for {
		j, ok := r.next()
		if !ok {
			r.L.Close()
			return
		}
		if j.c != nil {
			r.start(j.c)
		} else {
			j.f()
		}
	}
}

// spinRounds is how many times a goroutine yields the processor while it
// waits for a hand-off before it parks. Waking a parked goroutine costs
// ~1 µs of futex calls, as much as a whole callback; under load the next
// job or result usually arrives within a few yields.
const spinRounds = 40

// next returns the next job, spinning briefly before blocking.
func (r *Runtime) next() (job, bool) {
	for i := 0; i < spinRounds; i++ {
		select {
		case j, ok := <-r.jobs:
			return j, ok
		default:
			goruntime.Gosched()
		}
	}
	j, ok := <-r.jobs
	return j, ok
}

// wait receives a call's outcome, spinning briefly first when spin is
// set; gaveUp reports that cancel (the caller's context) ended first.
func wait(done chan error, cancel <-chan struct{}, spin bool) (err error, gaveUp bool) {
	for i := 0; spin && i < spinRounds; i++ {
		select {
		case err := <-done:
			return err, false
		case <-cancel:
			return nil, true
		default:
			goruntime.Gosched()
		}
	}
	select {
	case err := <-done:
		return err, false
	case <-cancel:
		return nil, true
	}
}

var ErrClosed = errors.New("module is closed")

// Post queues f to run on the loop goroutine. Safe from any goroutine; it
// reports false when the runtime has stopped.
func (r *Runtime) Post(f func()) bool { return r.enqueue(job{f: f}) }

func (r *Runtime) enqueue(j job) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return false
	}
	r.jobs <- j
	return true
}

// Close stops the loop after host calls in flight have returned, and
// frees the state. Safe from any goroutine except the loop.
func (r *Runtime) Close() {
	r.once.Do(func() {
		r.timers.stop()
		r.pending.Wait()
		r.mu.Lock()
		r.closed = true
		close(r.jobs)
		r.mu.Unlock()
		<-r.stopped
		watch.remove(r)
	})
}

// Invoke runs spec on the loop goroutine and waits for its result. Safe
// from any goroutine except the loop.
func (r *Runtime) Invoke(ctx context.Context, spec Call) error {
	c := callPool.Get().(*call)
	done := c.done
	*c = call{Call: spec, done: done}
	c.parent = ctx
	c.deadline = time.Now().Add(spec.Timeout)
	if !r.enqueue(job{c: c}) {
		return ErrClosed
	}
	// Spin only as the sole waiter: many spinning callers would churn the
	// scheduler and take CPU from the work they wait for.
	spin := r.waiters.Add(1) == 1
	err, gaveUp := wait(c.done, ctx.Done(), spin)
	r.waiters.Add(-1)
	if gaveUp {
		if atomic.CompareAndSwapInt32(&c.claim, 0, claimCaller) {
			// The loop may still hold c: never reuse it.
			return fmt.Errorf("module %q: %s: %w", r.module, spec.What, ctx.Err())
		}
		err = <-c.done
	}
	if c.parked {
		return err // a late resume may still look at it
	}
	*c = call{done: c.done}
	callPool.Put(c)
	return err
}

func (r *Runtime) take() *worker {
	if n := len(r.idle); n > 0 {
		w := r.idle[n-1]
		r.idle = r.idle[:n-1]
		return w
	}
	th, _ := r.L.NewThread()
	sandbox.MarkEngineThread(r.L, th, true)
	return &worker{th: th}
}

func (r *Runtime) retire(w *worker) {
	sandbox.MarkEngineThread(r.L, w.th, false)
}

// begin marks c as running on the loop for the watchdog and gives w the
// current loop context. Loop goroutine only.
func (r *Runtime) begin(c *call, w *worker) {
	ctx := r.ctx.Load()
	if ctx.Err() != nil { // an earlier call was interrupted
		ctx = newLoopCtx()
		r.ctx.Store(ctx)
	}
	if w.ctx != ctx {
		w.th.SetContext(ctx)
		w.ctx = ctx
	}
	r.wdmu.Lock()
	r.running, r.deadline = c, c.deadline
	r.wdmu.Unlock()
}

// end clears the running call. Loop goroutine only.
func (r *Runtime) end() {
	r.wdmu.Lock()
	r.running = nil
	r.wdmu.Unlock()
}

// interrupt cancels the loop context if the call running is past its
// deadline. Called by the watchdog.
func (r *Runtime) interrupt(now time.Time) {
	r.wdmu.Lock()
	if r.running != nil && now.After(r.deadline) {
		r.ctx.Load().cancel()
	}
	r.wdmu.Unlock()
}

// finish sends a call's outcome unless the caller or the deadline timer
// already finished it. Loop goroutine only.
func (c *call) finish(err error) {
	c.stopTimers()
	if atomic.CompareAndSwapInt32(&c.claim, 0, claimLoop) {
		c.done <- err
	}
}

// stopTimers releases a parked call's timer and host context. Loop only.
func (c *call) stopTimers() {
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.hcancel != nil {
		c.hcancel()
	}
}

// start begins c on a worker coroutine. Loop goroutine only.
func (r *Runtime) start(c *call) {
	if time.Now().After(c.deadline) {
		c.finish(r.timeoutError(c, ""))
		return
	}
	if c.Fn == nil {
		if err := Guard(func() { c.Fn = c.Resolve(r.L) }); err != nil {
			c.finish(r.wrap(c, err))
			return
		}
		if c.Fn == nil {
			c.finish(nil)
			return
		}
	}
	w := r.take()
	var args []lua.LValue
	if err := Guard(func() {
		if c.Args != nil {
			args = c.Args(r.L)
		}
	}); err != nil {
		r.idle = append(r.idle, w)
		c.finish(r.wrap(c, err))
		return
	}
	vals := make([]lua.LValue, 0, len(args)+1)
	vals = append(vals, c.Fn)
	vals = append(vals, args...)
	r.begin(c, w)
	var st lua.ResumeState
	var err error
	var rets []lua.LValue
	if w.started {
		st, err, rets = sandbox.ResumeGuarded(r.L, w.th, nil, vals)
	} else {
		w.started = true
		st, err, rets = sandbox.ResumeGuarded(r.L, w.th, r.loop, vals)
	}
	r.end()
	r.step(c, w, st, err, rets)
}

// step handles what a worker did after a resume. Loop goroutine only.
func (r *Runtime) step(c *call, w *worker, st lua.ResumeState, err error, rets []lua.LValue) {
	if st == lua.ResumeError {
		r.retire(w)
		c.finish(r.scriptError(c, w.th, err))
		return
	}
	if st == lua.ResumeOK || len(rets) == 0 {
		// The worker loop never returns; a coroutine that did is unusable.
		r.retire(w)
		c.finish(fmt.Errorf("module %q: %s: worker coroutine ended unexpectedly", r.module, c.What))
		return
	}
	if sandbox.IsDone(rets[0]) {
		if len(r.idle) < 256 {
			r.idle = append(r.idle, w)
		} else {
			r.retire(w)
		}
		c.stopTimers()
		if !atomic.CompareAndSwapInt32(&c.claim, 0, claimLoop) {
			return // the caller gave up: its variables are not ours to set
		}
		var rerr error
		if c.Ret != nil {
			if gerr := Guard(func() { rerr = c.Ret(r.L, rets[1:]) }); gerr != nil {
				rerr = r.wrap(c, gerr)
			}
		}
		c.done <- rerr
		return
	}
	hc, ok := sandbox.HostCallOf(rets[0])
	if !ok {
		r.retire(w)
		c.finish(fmt.Errorf("module %q (%s): %s: coroutine.yield called outside a coroutine", r.module, r.file, c.What))
		return
	}
	// The caller must get its answer at the deadline even if the host
	// ignores its context: a timer finishes the call then.
	if !c.parked {
		c.parked = true
		c.hctx, c.hcancel = context.WithDeadline(c.parent, c.deadline)
		where := hc.Position() // computed here: the timer runs elsewhere
		c.timer = time.AfterFunc(time.Until(c.deadline), func() {
			if atomic.CompareAndSwapInt32(&c.claim, 0, claimCaller) {
				c.done <- r.timeoutError(c, where)
			}
		})
	}
	hctx := c.hctx
	r.pending.Add(1)
	go func() {
		defer r.pending.Done()
		var res sandbox.Result
		herr := Guard(func() {
			var err error
			res, err = hc.Run(hctx)
			if err != nil {
				panic(hostErr{err})
			}
		})
		if he, ok := herr.(hostErr); ok {
			herr = he.err
		}
		posted := r.Post(func() {
			if time.Now().After(c.deadline) || c.parent.Err() != nil {
				// Past the deadline: abandon the coroutine, drop the late
				// result.
				r.retire(w)
				c.finish(r.timeoutError(c, hc.Position()))
				return
			}
			var vals []lua.LValue
			if err := Guard(func() { vals = sandbox.ResumeValues(r.L, hc, res, herr) }); err != nil {
				vals = []lua.LValue{lua.LFalse, lua.LString(fmt.Sprintf("%s %s: %v", hc.Position(), hc.Name, err))}
			}
			r.begin(c, w)
			st, err, rets := sandbox.ResumeGuarded(r.L, w.th, nil, vals)
			r.end()
			r.step(c, w, st, err, rets)
		})
		if !posted {
			c.finish(ErrClosed)
		}
	}()
}

// watch is the process-wide watchdog: every few milliseconds it
// interrupts calls running past their deadline. It runs only while some
// runtime exists, so no goroutine outlives the last Close.
var watch watchdog

const watchInterval = 5 * time.Millisecond

type watchdog struct {
	mu   sync.Mutex
	rts  map[*Runtime]struct{}
	stop chan struct{}
	done chan struct{}
}

func (w *watchdog) add(r *Runtime) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rts == nil {
		w.rts = map[*Runtime]struct{}{}
	}
	w.rts[r] = struct{}{}
	if w.stop == nil {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.run(w.stop, w.done)
	}
}

func (w *watchdog) remove(r *Runtime) {
	w.mu.Lock()
	delete(w.rts, r)
	var stop, done chan struct{}
	if len(w.rts) == 0 && w.stop != nil {
		stop, done = w.stop, w.done
		w.stop, w.done = nil, nil
	}
	w.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func (w *watchdog) run(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			w.mu.Lock()
			for r := range w.rts {
				r.interrupt(now)
			}
			w.mu.Unlock()
		}
	}
}

type hostErr struct{ err error }

func (h hostErr) Error() string { return h.err.Error() }

// Guard runs f, turning a Go panic into an error (a Lua raise inside f
// arrives as a panic carrying *lua.ApiError).
func Guard(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			switch v := p.(type) {
			case hostErr:
				err = v
			case sandbox.ResultError:
				err = v.Err
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

// Error is an error raised by (or a deadline hit in) a module's
// script. Error() reads like
// `module "list_spam" (spam/list_spam.lua:14): check_event_for_spam: attempt to index a nil value`.
type Error struct {
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

func (e *Error) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("module %q (%s): %s: %s", e.Module, pos, e.Callback, e.Msg)
}

func (e *Error) Unwrap() error { return e.Value }

var posPrefix = regexp.MustCompile(`^([^\s:]+\.lua):(\d+):\s?`)

// scriptError builds a ScriptError from a failed resume.
func (r *Runtime) scriptError(c *call, th *lua.LState, err error) error {
	val := sandbox.ErrorValue(err)
	se := &Error{Module: r.module, Callback: c.What, File: r.file}
	if v := luaapi.RaisedError(r.L, val); v != nil {
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
			msg = ToString(r.L, val)
			if t, ok := val.(*lua.LTable); ok && r.L.GetMetaField(val, "__tostring") == lua.LNil {
				if m, ok := t.RawGetString("message").(lua.LString); ok {
					msg = string(m)
				} else if m, ok := t.RawGetString("msg").(lua.LString); ok {
					msg = string(m)
				} else {
					msg = "error object: " + msg
				}
			}
		}
		if m := posPrefix.FindStringSubmatch(msg); m != nil {
			se.File = m[1]
			se.Line, _ = strconv.Atoi(m[2])
			msg = msg[len(m[0]):]
		}
		if strings.TrimSpace(msg) == "" || val == lua.LNil {
			msg = "error raised without a message (error(nil) or error(\"\"))"
		}
		se.Msg = msg
		if time.Now().After(c.deadline) && strings.Contains(msg, context.DeadlineExceeded.Error()) {
			se.Timeout = true
			se.Msg = fmt.Sprintf("timed out after %s (still running at this line)", c.Timeout)
		}
	}
	var top frame
	se.Traceback, top = traceback(th)
	if se.Line == 0 && top.line > 0 && !se.Timeout {
		// A non-string error carries no position; the stack still does.
		se.File, se.Line = top.source, top.line
	}
	return se
}

func (r *Runtime) timeoutError(c *call, where string) error {
	file, line := splitWhere(where, r.file)
	return &Error{Module: r.module, Callback: c.What, File: file, Line: line, Timeout: true,
		Msg: fmt.Sprintf("timed out after %s", c.Timeout)}
}

// wrap names the module in a Go-side error of an invocation.
func (r *Runtime) wrap(c *call, err error) error {
	if ae, ok := err.(*lua.ApiError); ok {
		return r.scriptError(c, r.L, ae)
	}
	return fmt.Errorf("module %q: %s: %w", r.module, c.What, err)
}

func splitWhere(where, def string) (string, int) {
	if m := posPrefix.FindStringSubmatch(strings.TrimSpace(where) + " "); m != nil {
		n, _ := strconv.Atoi(m[2])
		return m[1], n
	}
	return def, 0
}

// ToString is tostring(v) for logs and messages; a failing __tostring
// gives the plain form.
func ToString(L *lua.LState, v lua.LValue) string {
	if fn := L.GetMetaField(v, "__tostring"); fn != lua.LNil {
		var s string
		_ = Guard(func() {
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

type frame struct {
	source string
	line   int
}

// traceback walks a dead coroutine's frames (they survive the error) and
// returns them, with the innermost script frame.
func traceback(th *lua.LState) (string, frame) {
	var b strings.Builder
	var top frame
	_ = Guard(func() {
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
			if top.line == 0 {
				top = frame{dbg.Source, dbg.CurrentLine}
			}
			fmt.Fprintf(&b, "\n\t%s:%d: in %s", dbg.Source, dbg.CurrentLine, name)
		}
	})
	if b.Len() == 0 {
		return "", top
	}
	return "stack traceback:" + b.String(), top
}

// count is how many module runtimes are alive (for leak tests).
func (w *watchdog) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.rts)
}

// Live is how many runtimes are open in the process (for leak tests).
func Live() int { return watch.count() }
