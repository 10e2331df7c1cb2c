package runtime

import (
	"sync"
	"sync/atomic"
	"time"
)

// The watchdog: one goroutine for the process. While any call is in
// flight it ticks every few milliseconds and, for each runtime, interrupts
// the step running past its deadline (cancelling the context its worker
// checks at every instruction) and fails queued calls whose deadline
// passed. It never touches a state. With nothing in flight for a while it
// parks until the next call wakes it, so an idle process costs no CPU.

const (
	watchInterval = 5 * time.Millisecond
	// watchIdleTicks is how many ticks with nothing in flight the watchdog
	// waits before it parks (100 ms).
	watchIdleTicks = 20
	// wedgedAfter is how far past its deadline a step must run, after its
	// interruption, to be reported as wedged in Go code.
	wedgedAfter = time.Second
)

var watch = newWatchdog()

type watchdog struct {
	mu     sync.Mutex
	rts    map[*Runtime]struct{}
	active atomic.Int64 // calls in flight, in every runtime
	parked atomic.Bool
	wakeCh chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

func newWatchdog() *watchdog {
	return &watchdog{rts: map[*Runtime]struct{}{}, wakeCh: make(chan struct{}, 1)}
}

// wake starts ticking again if the watchdog parked. Cheap when it did not.
func (w *watchdog) wake() {
	if w.parked.Load() {
		select {
		case w.wakeCh <- struct{}{}:
		default:
		}
	}
}

func (w *watchdog) add(r *Runtime) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rts[r] = struct{}{}
	if w.stop == nil {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.run(w.stop, w.done)
	}
}

// remove forgets r; the last removal stops the watchdog, so no goroutine
// outlives the last runtime.
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
	defer func() { t.Stop() }()
	idle := 0
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if w.active.Load() == 0 {
				idle++
				if idle >= watchIdleTicks {
					t.Stop()
					w.parked.Store(true)
					if w.active.Load() == 0 { // a call may have started meanwhile
						select {
						case <-stop:
							return
						case <-w.wakeCh:
						}
					}
					w.parked.Store(false)
					idle = 0
					t.Reset(watchInterval)
				}
				continue
			}
			idle = 0
			w.tick(now.UnixNano())
		}
	}
}

func (w *watchdog) tick(now int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkMemory(now)
	for r := range w.rts {
		if t := r.cur.Load(); t != nil && (now > t.deadline || t.ctx.Err() != nil) {
			// Past its deadline, or its caller went away (a background
			// call whose module is closing): interrupt it.
			var reason error // nil: the deadline
			if now <= t.deadline {
				reason = t.ctx.Err()
			}
			if c := r.ctxNow.Load(); c != nil {
				c.cancel(reason)
			}
			if over := time.Duration(now - t.deadline); over > wedgedAfter && r.noteWedged(t) {
				r.log.Error("a call did not stop at its deadline: it is stuck in Go code that does not check it (the module answers nothing until it returns)",
					"module", r.module, "callback", t.What, "over_deadline", over.Round(time.Millisecond))
			}
		}
		r.mu.Lock()
		queued := len(r.queue) > 0
		r.mu.Unlock()
		if queued {
			r.expireQueued(now)
		}
	}
}

// noteWedged reports whether t was not reported as wedged yet.
func (r *Runtime) noteWedged(t *task) bool {
	return r.wedged.CompareAndSwap(nil, t)
}

// count is how many runtimes are open.
func (w *watchdog) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.rts)
}

// Live is how many runtimes are open in the process (for leak tests).
func Live() int { return watch.count() }
