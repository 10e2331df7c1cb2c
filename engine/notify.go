package engine

import (
	"context"
	"time"

	"github.com/luahost/luahost/luaapi"
)

// Notifications (on_new_event, on_profile_update, ...) can be fired
// without waiting: they go on a bounded queue that one goroutine drains
// in order. When the queue is full the notification is dropped, counted
// (Dropped) and logged at most once a second — never silently.

// NotificationQueueSize bounds the queue of fired notifications.
const NotificationQueueSize = 1024

func (e *Engine) startNotifier() {
	e.notifications = make(chan func(), NotificationQueueSize)
	e.notifierDone = make(chan struct{})
	go func() {
		defer close(e.notifierDone)
		for f := range e.notifications {
			f()
		}
	}()
}

// stopNotifier delivers what is queued, then stops.
func (e *Engine) stopNotifier() {
	e.notifyMu.Lock()
	e.notifyClosed = true
	close(e.notifications)
	e.notifyMu.Unlock()
	<-e.notifierDone
}

// Fire queues a notification callback ("third_party_rules.on_new_event",
// ...) with Go arguments in Synapse's order and returns at once. It
// reports false when the queue was full and the notification dropped.
func (e *Engine) Fire(callback string, args ...any) bool {
	cb, err := luaapi.LookupCallback(callback)
	if err != nil {
		e.log.Error("Fire: "+err.Error(), "callback", callback)
		return false
	}
	if !e.Has(cb.ID()) {
		return true
	}
	job := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_ = e.notify(ctx, cb.ID(), args...)
	}
	// Not e.mu: a reload holds it for as long as modules take to load.
	e.notifyMu.RLock()
	defer e.notifyMu.RUnlock()
	if e.notifyClosed {
		return false
	}
	select {
	case e.notifications <- job:
		return true
	default:
		n := e.dropped.Add(1)
		now := time.Now().Unix()
		if last := e.lastDropLog.Load(); now > last && e.lastDropLog.CompareAndSwap(last, now) {
			e.log.Warn("notification queue full; dropping notifications", "callback", callback, "dropped_total", n)
		}
		return false
	}
}

// FireOnNewEvent queues on_new_event without waiting.
func (e *Engine) FireOnNewEvent(ev *Event, state StateMap) bool {
	return e.Fire("third_party_rules.on_new_event", ev, state)
}

// Dropped counts notifications dropped because the queue was full.
func (e *Engine) Dropped() uint64 { return e.dropped.Load() }
