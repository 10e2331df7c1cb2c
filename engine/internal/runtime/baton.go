package runtime

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
)

// The baton: who may touch a Runtime's state, and when (see doc.go).
//
// mu guards only the bookkeeping below (busy, the queue, the counts); it
// is never held while Lua runs. The goroutine that set busy holds the
// baton: it alone touches L, the workers and lctx until it clears busy
// or hands the baton to a queued caller.

// handOffAfter is how many queued steps a baton holder runs for others
// before it hands the baton on: its own caller is waiting meanwhile.
const handOffAfter = 8

// Runtime owns one Lua state (one instance of a module generation).
// Every method is safe from any goroutine, except from inside a step that
// runs on this runtime (a callback calling back into its own module).
type Runtime struct {
	L        *lua.LState
	module   string
	file     string
	log      *slog.Logger
	instance int  // 1-based instance number within its Set
	inline   bool // host calls run on the caller's goroutine

	mu       sync.Mutex
	busy     bool
	queue    []*task
	closing  bool
	inflight int           // Invokes and host goroutines not yet returned
	drained  chan struct{} // closed when closing and inflight reaches 0
	// dead are worker coroutines abandoned by timed-out calls; the next
	// baton holder forgets them (only it may touch the state).
	dead []*lua.LState

	// The baton holder's alone:
	loop    *lua.LFunction // the worker coroutine body
	workers []*worker      // idle workers
	lctx    *loopCtx       // the context workers run under
	vals    []lua.LValue   // scratch for a call's first resume
	closed  bool

	// The watchdog's view, written by the baton holder:
	cur    atomic.Pointer[task] // the task whose step runs now
	ctxNow atomic.Pointer[loopCtx]
	wedged atomic.Pointer[task] // the step last reported as wedged
	load   atomic.Int32         // calls in flight here, for Set's choice
	timers *timers

	// Memory (memory.go):
	maxMemory   int64
	onOverLimit func(size int64)
	roots       func() []lua.LValue
	dirty       atomic.Bool  // a step ran since the last measuring round
	measure     atomic.Bool  // measure the state at the next chance
	lastSize    atomic.Int64 // the last measurement, bytes
}

// Options describe the module a runtime serves.
type Options struct {
	Module string // the module's name, for errors and logs
	File   string // its script, as errors show it
	Log    *slog.Logger
	// Instance is the 1-based number of this state among the module's
	// instances (1 when there is one).
	Instance int
	// InlineHostCalls runs every host call's Go work on the calling
	// goroutine, saving a goroutine and a hand-off per host call; set it
	// only when the host's methods return once their context is done.
	// Otherwise only host calls marked Inline do, and the others run on a
	// goroutine of their own, so the caller gets its answer at the deadline
	// whatever the host does.
	InlineHostCalls bool
	// MaxMemory bounds what the state may hold (0: no bound). A step that
	// grows the heap by more fails with ErrMemory; a state found holding
	// more is reported to OnOverLimit (on a goroutine of its own).
	MaxMemory   int64
	OnOverLimit func(size int64)
	// Roots are values the engine holds for the state (registered
	// functions, the module table), counted when it is measured; called
	// with the baton in hand.
	Roots func() []lua.LValue
}

// New returns a runtime that owns L from now on.
func New(L *lua.LState, o Options) *Runtime {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Instance == 0 {
		o.Instance = 1
	}
	r := &Runtime{L: L, module: o.Module, file: o.File, log: o.Log, instance: o.Instance,
		inline: o.InlineHostCalls, timers: newTimers(),
		maxMemory: o.MaxMemory, onOverLimit: o.OnOverLimit, roots: o.Roots}
	if o.MaxMemory > 0 {
		for {
			cur := minLimit.Load()
			if (cur != 0 && cur <= o.MaxMemory) || minLimit.CompareAndSwap(cur, o.MaxMemory) {
				break
			}
		}
	}
	r.loop, _ = sandbox.WorkerLoop(L)
	r.setLoopCtx(newLoopCtx())
	watch.add(r)
	return r
}

// ErrClosed is what calls on a closed runtime return.
var ErrClosed = errors.New("module is closed")

// enter counts a call in flight unless the runtime is closing.
func (r *Runtime) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	r.inflight++
	return true
}

func (r *Runtime) leave() {
	r.mu.Lock()
	r.inflight--
	if r.inflight == 0 && r.drained != nil {
		close(r.drained)
		r.drained = nil
	}
	r.mu.Unlock()
}

// exec runs t's next step with the baton: at once on this goroutine when
// the state is idle, else after the holder gets to it. It returns when
// the step has run (t.state tells what happened) or when the caller gave
// up waiting in the queue (t is then finished with the reason).
func (r *Runtime) exec(t *task) {
	r.mu.Lock()
	if r.busy {
		if t.sig == nil {
			t.sig = make(chan signal, 1)
		}
		r.queue = append(r.queue, t)
		r.mu.Unlock()
		r.waitTurn(t)
		return
	}
	r.busy = true
	r.mu.Unlock()
	r.hold(t)
}

// hold runs t's step, then steps others queued meanwhile, then releases
// the baton or hands it to the next waiter. The caller holds the baton.
func (r *Runtime) hold(t *task) {
	r.step(t)
	for served := 0; ; served++ {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.busy = false
			r.mu.Unlock()
			return
		}
		next := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		r.mu.Unlock()
		if served >= handOffAfter {
			next.sig <- sigBaton // its caller holds the baton now
			return
		}
		r.step(next)
		next.sig <- sigStepped
	}
}

type signal uint8

const (
	sigStepped signal = iota + 1 // the holder ran your step
	sigBaton                     // you hold the baton: run your step
	sigExpired                   // your deadline passed in the queue
)

// waitTurn waits in the queue until the holder ran t's step, handed the
// baton over, or the caller gave up.
func (r *Runtime) waitTurn(t *task) {
	var s signal
	select {
	case s = <-t.sig:
	case <-t.ctx.Done():
		if r.unqueue(t) {
			t.finish(r.canceled(t))
			return
		}
		s = <-t.sig // the holder took it just now
	}
	switch s {
	case sigBaton:
		r.hold(t)
	case sigExpired:
		t.finish(r.timeoutError(t, ""))
	}
}

func (r *Runtime) unqueue(t *task) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, q := range r.queue {
		if q == t {
			r.queue = append(r.queue[:i], r.queue[i+1:]...)
			return true
		}
	}
	return false
}

// expireQueued fails queued tasks whose deadline passed (the watchdog's
// tick); their callers stop waiting.
func (r *Runtime) expireQueued(now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.queue[:0]
	for _, t := range r.queue {
		if now > t.deadline {
			t.sig <- sigExpired
			continue
		}
		kept = append(kept, t)
	}
	for i := len(kept); i < len(r.queue); i++ {
		r.queue[i] = nil
	}
	r.queue = kept
}

// Do runs f with the state in hand (waiting for the baton) and reports
// false when the runtime is closed. f must not yield or call host
// functions.
func (r *Runtime) Do(f func(L *lua.LState)) bool {
	if !r.enter() {
		return false
	}
	defer r.leave()
	t := newTask(r, callCtxBackground, Call{What: "setup"}, time.Hour)
	t.do = f
	r.exec(t)
	return true
}

// Close stops the runtime: new calls are refused, timers stop, the calls
// and host calls in flight finish (for up to grace; a state whose step is
// wedged in Go code past that is abandoned with a log line rather than
// waited for), then the state is freed. Not from a step of this runtime.
func (r *Runtime) Close() { r.CloseWithin(closeGrace) }

// closeGrace bounds how long Close waits for calls in flight; calls are
// bounded by their own deadlines, so only a wedged one takes this long.
var closeGrace = 5 * time.Second

// CloseWithin is Close with a chosen grace.
func (r *Runtime) CloseWithin(grace time.Duration) {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return
	}
	r.closing = true
	var drained chan struct{}
	if r.inflight > 0 {
		drained = make(chan struct{})
		r.drained = drained
	}
	r.mu.Unlock()
	r.timers.stop()
	if drained != nil {
		t := time.NewTimer(grace)
		select {
		case <-drained:
			t.Stop()
		case <-t.C:
			r.log.Error("module did not stop within its grace period; abandoning its Lua state",
				"module", r.module, "grace", grace)
			watch.remove(r)
			return
		}
	}
	// Nothing is in flight and nothing new can start: take the baton for
	// good and free the state.
	r.mu.Lock()
	r.busy = true
	r.mu.Unlock()
	r.closed = true
	r.L.Close()
	watch.remove(r)
}

// take returns an idle worker coroutine, making one if none is idle.
// Baton holder only.
func (r *Runtime) take() *worker {
	r.forgetDead()
	if n := len(r.workers); n > 0 {
		w := r.workers[n-1]
		r.workers = r.workers[:n-1]
		return w
	}
	th, _ := r.L.NewThread()
	sandbox.MarkEngineThread(r.L, th, true)
	return &worker{th: th}
}

// idle returns a worker to the pool. Baton holder only.
func (r *Runtime) idle(w *worker) {
	if len(r.workers) < maxIdleWorkers {
		r.workers = append(r.workers, w)
		return
	}
	sandbox.MarkEngineThread(r.L, w.th, false)
}

// maxIdleWorkers bounds the pool of idle worker coroutines (each holds a
// Lua stack).
const maxIdleWorkers = 64

// retire forgets a worker that raised or was abandoned. Baton holder only.
func (r *Runtime) retire(w *worker) { sandbox.MarkEngineThread(r.L, w.th, false) }

// abandon schedules a parked worker to be forgotten by the next baton
// holder. Any goroutine.
func (r *Runtime) abandon(w *worker) {
	r.mu.Lock()
	r.dead = append(r.dead, w.th)
	r.mu.Unlock()
}

func (r *Runtime) forgetDead() {
	r.mu.Lock()
	dead := r.dead
	r.dead = nil
	r.mu.Unlock()
	for _, th := range dead {
		sandbox.MarkEngineThread(r.L, th, false)
	}
}

// worker is a reusable coroutine that runs one call at a time.
type worker struct {
	th      *lua.LState
	ctx     *loopCtx
	started bool
}
