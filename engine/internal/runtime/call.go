package runtime

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
)

// A call's life: it is queued or runs at once (stepping), and each step
// either finishes it (done) or parks it on a host call (parked), after
// which the caller's goroutine does the Go work and the call steps again.
// A call that outlives its deadline while queued or parked is finished
// with a timeout by its caller; one that overruns while stepping is
// interrupted by the watchdog.

// Call is one invocation of a Lua function.
type Call struct {
	What string // callback or handler name, for errors
	Fn   *lua.LFunction
	// Resolve, when Fn is nil, finds the function with the state in hand
	// (instance is the state's 1-based instance number); a nil result
	// skips the call.
	Resolve func(L *lua.LState, instance int) *lua.LFunction
	// Args builds the arguments with the state in hand.
	Args func(L *lua.LState) []lua.LValue
	// Ret reads the results with the state in hand (nil: ignore them).
	Ret func(L *lua.LState, rets []lua.LValue) error
	// Timeout is the call's deadline from when it is made.
	Timeout time.Duration
}

type callState uint8

const (
	stateNew    callState = iota // not stepped yet
	stateParked                  // waiting on a host call
	stateResume                  // the host call answered; step again
	stateDone                    // finished: err is the outcome
)

// task is a Call in flight. Its fields are written by whoever runs its
// step (holding the baton) or by its caller between steps; the signal
// channel orders the two.
type task struct {
	Call
	r           *Runtime
	ctx         context.Context // the caller's
	deadline    int64           // unix nanoseconds
	heapAtStart atomic.Int64    // the heap when its step began; the watchdog reads it (memory.go)
	state       callState
	err         error
	sig         chan signal         // made (under the runtime's mu) when it queues
	do          func(L *lua.LState) // a setup step (Runtime.Do) instead of a call

	w       *worker
	hc      *sandbox.HostCall // the host call the call is parked on
	answer  hostResult        // its answer, for the next step
	hostCtx *hostCtx          // the deadline context of the call's host work
}

var callCtxBackground = context.Background()

// newTask makes a task. Tasks are not pooled: the watchdog may still read
// one's deadline after it finished. Its signal channel is made when it
// first has to wait in a queue.
func newTask(r *Runtime, ctx context.Context, c Call, timeout time.Duration) *task {
	return &task{Call: c, r: r, ctx: ctx, deadline: time.Now().Add(timeout).UnixNano()}
}

// done releases what a finished task holds.
func (t *task) done() {
	if t.hostCtx != nil {
		t.hostCtx.release()
	}
}

func (t *task) finish(err error) {
	t.state, t.err = stateDone, err
}

// Invoke runs c and waits for its outcome. Safe from any goroutine except
// from inside a step of this runtime.
func (r *Runtime) Invoke(ctx context.Context, c Call) error {
	if !r.enter() {
		return ErrClosed
	}
	defer r.leave()
	r.load.Add(1)
	defer r.load.Add(-1)
	watch.active.Add(1)
	defer watch.active.Add(-1)
	watch.wake()
	t := newTask(r, ctx, c, c.Timeout)
	defer t.done()
	for {
		r.exec(t)
		if t.state == stateDone {
			return t.err
		}
		// Parked: do the host call's Go work here, off the baton.
		parkedCalls.Add(1)
		err := r.hostWork(t)
		parkedCalls.Add(-1)
		if err != nil {
			// Past the deadline or given up: the coroutine is abandoned
			// where it stands and a late answer is dropped. t is not
			// recycled: a host goroutine may still hold its host call.
			return err
		}
	}
}

// giveUp finishes a parked call whose deadline passed or whose caller
// went away: it names the script line that made the host call (reading
// the parked coroutine needs the baton, so a short step does it) and
// abandons the coroutine.
func (r *Runtime) giveUp(t *task, timeout bool) error {
	where := ""
	hc, w := t.hc, t.w
	fix := newTask(r, callCtxBackground, Call{What: t.What}, 200*time.Millisecond)
	fix.do = func(*lua.LState) {
		where = hc.Position()
		r.retire(w)
	}
	r.exec(fix)
	if fix.state != stateDone || fix.err != nil || where == "" {
		where = hc.Where // computed already, or unknown
		if fix.state != stateDone {
			r.abandon(w)
		}
	}
	if timeout {
		return r.timeoutError(t, where)
	}
	return r.canceled(t)
}

// step runs t's next step. Baton holder only.
func (r *Runtime) step(t *task) {
	if r.closed {
		t.finish(ErrClosed)
		return
	}
	if t.do != nil {
		if err := Guard(func() { t.do(r.L) }); err != nil {
			t.finish(err)
			return
		}
		t.finish(nil)
		return
	}
	if now := time.Now().UnixNano(); now > t.deadline {
		where := ""
		if t.hc != nil {
			where = t.hc.Position() // parked, with the state in hand
		}
		if t.w != nil {
			r.retire(t.w)
		}
		t.finish(r.timeoutError(t, where))
		return
	}
	if t.ctx.Err() != nil {
		if t.w != nil {
			r.retire(t.w)
		}
		t.finish(r.canceled(t))
		return
	}
	var st lua.ResumeState
	var err error
	var rets []lua.LValue
	switch t.state {
	case stateNew:
		fn := t.Fn
		if fn == nil && t.Resolve != nil {
			if gerr := Guard(func() { fn = t.Resolve(r.L, r.instance) }); gerr != nil {
				t.finish(r.wrap(t, gerr))
				return
			}
		}
		if fn == nil {
			t.finish(nil)
			return
		}
		var args []lua.LValue
		if t.Args != nil {
			if gerr := Guard(func() { args = t.Args(r.L) }); gerr != nil {
				t.finish(r.wrap(t, gerr))
				return
			}
		}
		t.w = r.take()
		// Resume copies the values onto the coroutine's stack: the
		// runtime's scratch slice serves every call.
		vals := append(r.vals[:0], fn)
		vals = append(vals, args...)
		r.vals = vals[:0]
		r.begin(t)
		if t.w.started {
			st, err, rets = sandbox.ResumeGuarded(r.L, t.w.th, nil, vals)
		} else {
			t.w.started = true
			st, err, rets = sandbox.ResumeGuarded(r.L, t.w.th, r.loop, vals)
		}
	case stateResume:
		hc, ans := t.hc, t.answer
		var vals []lua.LValue
		if gerr := Guard(func() { vals = sandbox.ResumeValues(r.L, hc, ans.res, ans.err, r.vals[:0]) }); gerr != nil {
			vals = []lua.LValue{lua.LFalse, lua.LString(fmt.Sprintf("%s %s: %v", hc.Position(), hc.Name, gerr))}
		}
		t.hc, t.answer = nil, hostResult{}
		r.vals = vals[:0]
		r.begin(t)
		st, err, rets = sandbox.ResumeGuarded(r.L, t.w.th, nil, vals)
	default:
		t.finish(fmt.Errorf("module %q: %s: internal error: stepping a call in state %d", r.module, t.What, t.state))
		return
	}
	r.end(t)
	r.after(t, st, err, rets)
	if r.measure.Load() {
		r.measureNow()
	}
}

// begin shows t to the watchdog and gives its worker the current loop
// context. Baton holder only.
func (r *Runtime) begin(t *task) {
	ctx := r.lctx
	if ctx.Err() != nil { // an earlier step was interrupted
		ctx = newLoopCtx()
		r.setLoopCtx(ctx)
	}
	if t.w.ctx != ctx {
		t.w.th.SetContext(ctx)
		t.w.ctx = ctx
	}
	if r.maxMemory > 0 {
		t.heapAtStart.Store(heapNow.Load())
		if !r.dirty.Load() {
			r.dirty.Store(true)
		}
	}
	r.cur.Store(t)
}

func (r *Runtime) end(*task) { r.cur.Store(nil) }

func (r *Runtime) setLoopCtx(c *loopCtx) {
	r.lctx = c
	r.ctxNow.Store(c)
}

// after handles what a resume did. Baton holder only.
func (r *Runtime) after(t *task, st lua.ResumeState, err error, rets []lua.LValue) {
	w := t.w
	switch {
	case st == lua.ResumeError:
		r.retire(w)
		serr := r.scriptError(t, w.th, err)
		if e, ok := serr.(*Error); ok && e.Memory {
			r.measure.Store(true) // does the state itself hold too much?
		}
		t.finish(serr)
	case st == lua.ResumeOK || len(rets) == 0:
		// The worker loop never returns; a coroutine that did is unusable.
		r.retire(w)
		t.finish(fmt.Errorf("module %q: %s: worker coroutine ended unexpectedly", r.module, t.What))
	case sandbox.IsDone(rets[0]):
		r.idle(w)
		t.w = nil
		var rerr error
		if t.Ret != nil {
			if gerr := Guard(func() { rerr = t.Ret(r.L, rets[1:]) }); gerr != nil {
				rerr = r.wrap(t, gerr)
			}
		}
		t.finish(rerr)
	default:
		hc, ok := sandbox.HostCallOf(rets[0])
		if !ok {
			r.retire(w)
			t.finish(fmt.Errorf("module %q (%s): %s: coroutine.yield called outside a coroutine", r.module, r.file, t.What))
			return
		}
		t.hc = hc
		t.state = stateParked
	}
}

type hostResult struct {
	res sandbox.Result
	err error
}

// hostWork runs a parked call's host call on the caller's goroutine (or,
// for a host that might ignore its context, on a goroutine of its own
// while the caller waits for it or the deadline), and keeps the answer
// for the next step. A non-nil error finishes the call (deadline or
// cancellation).
func (r *Runtime) hostWork(t *task) error {
	hc := t.hc
	if t.hostCtx == nil {
		t.hostCtx = newHostCtx(t.ctx, time.Unix(0, t.deadline))
	}
	hctx := t.hostCtx
	var hr hostResult
	if r.inline || hc.Inline {
		hr.res, hr.err = runHost(hc, hctx)
	} else {
		if !r.enter() {
			return r.giveUp(t, false)
		}
		ch := make(chan hostResult, 1)
		go func() {
			defer r.leave()
			res, err := runHost(hc, hctx)
			ch <- hostResult{res, err}
		}()
		select {
		case hr = <-ch:
		case <-hctx.Done():
		}
	}
	if time.Now().UnixNano() > t.deadline {
		return r.giveUp(t, true)
	}
	if t.ctx.Err() != nil {
		return r.giveUp(t, false)
	}
	t.answer = hr
	t.state = stateResume
	return nil
}

func runHost(hc *sandbox.HostCall, ctx context.Context) (res sandbox.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	return hc.Run(ctx)
}

// loopCtx is the context worker coroutines run under: the VM checks it at
// every instruction, and the watchdog cancels it to interrupt the step
// that runs past its deadline (or, with a reason, for memory).
//
// gopher-lua selects on Done() at every instruction: Done is nil (a
// receive on a nil channel in a select with default costs next to
// nothing) until the context is cancelled, then a closed channel. Unlike
// an ordinary context, successive calls to Done may differ: only the VM's
// per-instruction check and Err rely on it.
type loopCtx struct {
	closed atomic.Pointer[chan struct{}]
	once   sync.Once
	reason atomic.Pointer[error]
}

func newLoopCtx() *loopCtx { return &loopCtx{} }

// cancel interrupts with reason (nil: the deadline).
func (c *loopCtx) cancel(reason error) {
	c.once.Do(func() {
		if reason != nil {
			c.reason.Store(&reason)
		}
		ch := make(chan struct{})
		close(ch)
		c.closed.Store(&ch)
	})
}
func (c *loopCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *loopCtx) Done() <-chan struct{} {
	if ch := c.closed.Load(); ch != nil {
		return *ch
	}
	return nil
}
func (c *loopCtx) Value(any) any { return nil }
func (c *loopCtx) Err() error {
	if c.closed.Load() == nil {
		return nil
	}
	if r := c.reason.Load(); r != nil {
		return *r
	}
	return context.DeadlineExceeded
}

// hostCtx bounds a call's host work by its deadline. Most host calls
// answer at once and never ask for Done: the timer a deadline context
// needs (~1 µs) is made only when something does.
type hostCtx struct {
	parent   context.Context
	deadline time.Time
	once     sync.Once
	real     atomic.Pointer[context.Context]
	cancel   context.CancelFunc
}

func newHostCtx(parent context.Context, deadline time.Time) *hostCtx {
	return &hostCtx{parent: parent, deadline: deadline}
}

func (c *hostCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *hostCtx) Value(k any) any             { return c.parent.Value(k) }
func (c *hostCtx) Done() <-chan struct{} {
	c.once.Do(func() {
		ctx, cancel := context.WithDeadline(c.parent, c.deadline)
		c.cancel = cancel
		c.real.Store(&ctx)
	})
	return (*c.real.Load()).Done()
}
func (c *hostCtx) Err() error {
	if r := c.real.Load(); r != nil {
		return (*r).Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// release stops the timer, if one was made. Only once the host work is
// over.
func (c *hostCtx) release() {
	if c.real.Load() != nil {
		c.cancel()
	}
}
