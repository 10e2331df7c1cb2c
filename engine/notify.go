package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/luaapi"
)

// Notifications (on_new_event, on_profile_update, ...) can be fired
// without waiting (the generated Fire* methods): they go on a bounded
// queue that one goroutine drains in order. When the queue is full the
// notification is dropped, counted (Dropped) and logged at most once a
// second — never silently.

// NotificationQueueSize bounds the queue of fired notifications.
const NotificationQueueSize = 1024

// notifyTimeout bounds one queued notification across every module.
const notifyTimeout = 5 * time.Minute

type notifier struct {
	queue   chan func()
	done    chan struct{}
	mu      sync.RWMutex // guards sending on queue against stop
	stopped bool
	dropped atomic.Uint64
	lastLog atomic.Int64
}

func (n *notifier) start() {
	n.queue = make(chan func(), NotificationQueueSize)
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		for f := range n.queue {
			f()
		}
	}()
}

// stop delivers what is queued, then stops.
func (n *notifier) stop() {
	n.mu.Lock()
	if n.queue == nil || n.stopped {
		n.mu.Unlock()
		return
	}
	n.stopped = true
	close(n.queue)
	n.mu.Unlock()
	<-n.done
}

// fire queues run (a notification invoker) unless no module registered
// cb; false means the queue was full and the notification was dropped.
func (e *Engine) fire(cb *luaapi.Callback, run func(ctx context.Context) error) bool {
	if len(e.snap.Load().callbacks[cb]) == 0 {
		return true
	}
	job := func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		_ = run(ctx) // each module's failure is logged by the walk
	}
	n := &e.notifier
	// Not e.mu: a reload holds it for as long as modules take to load.
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.stopped {
		return false
	}
	select {
	case n.queue <- job:
		return true
	default:
		if e.obs != nil {
			e.obs.NotificationDropped(callbackIDs[cb])
		}
		total := n.dropped.Add(1)
		now := time.Now().Unix()
		if last := n.lastLog.Load(); now > last && n.lastLog.CompareAndSwap(last, now) {
			e.log.Warn("notification queue full; dropping notifications", slog.String("callback", cb.ID()), slog.Uint64("dropped_total", total))
		}
		return false
	}
}

// Stats are gauges for metrics. LuaStates, CallsInFlight, ParkedCalls
// and Timers count every engine of the process; the notification figures
// are this engine's.
type Stats struct {
	LuaStates     int   // open Lua states
	CallsInFlight int64 // calls running, queued for a busy state, or parked
	ParkedCalls   int64 // calls waiting for a host call to answer
	Timers        int64 // pending api.looping_background_call and delayed_background_call timers
	// NotificationQueue is how many fired notifications wait in the
	// queue (at most NotificationQueueSize).
	NotificationQueue    int
	NotificationsDropped uint64
}

// Stats reads the gauges. Safe from any goroutine.
func (e *Engine) Stats() Stats {
	rs := runtime.ReadStats()
	st := Stats{LuaStates: rs.States, CallsInFlight: rs.InFlight, ParkedCalls: rs.Parked, Timers: rs.Timers}
	if e != nil {
		st.NotificationQueue = len(e.notifier.queue)
		st.NotificationsDropped = e.notifier.dropped.Load()
	}
	return st
}

// Dropped counts notifications dropped because the queue was full.
func (e *Engine) Dropped() uint64 {
	if e == nil {
		return 0
	}
	return e.notifier.dropped.Load()
}
