package runtime

import "sync"

// timers are a runtime's background calls (looping and delayed): each is
// a goroutine that hands its calls to the runtime like any caller. Close
// stops them first.
type timers struct {
	mu      sync.Mutex
	stopped bool
	quit    chan struct{}
	wg      sync.WaitGroup
}

func newTimers() *timers { return &timers{quit: make(chan struct{})} }

// start runs f on a new timer goroutine unless the timers are stopped.
func (t *timers) start(f func(quit <-chan struct{})) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.wg.Add(1)
	liveTimers.Add(1)
	go func() {
		defer t.wg.Done()
		defer liveTimers.Add(-1)
		f(t.quit)
	}()
	return true
}

// stop ends every timer and waits for their goroutines. Not from the loop.
func (t *timers) stop() {
	t.mu.Lock()
	if !t.stopped {
		t.stopped = true
		close(t.quit)
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// StartTimer runs f on a new timer goroutine until quit closes (when the
// runtime closes); it reports false when the runtime is closing. Safe from
// any goroutine.
func (r *Runtime) StartTimer(f func(quit <-chan struct{})) bool { return r.timers.start(f) }
