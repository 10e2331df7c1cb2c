// Package lease keeps one instance's claim on a storage.Leaser lease: it takes the lease when
// it is free, renews it while it holds it, and answers "may this instance act as the holder
// now?" from a local timestamp, without a round trip (the fence each background task run
// checks).
//
// Timing, for a lease of TTL (docs/instances.md):
//
//   - the holder renews every TTL/3, and after a failed attempt every TTL/10;
//   - it stops acting TTL/5 before the lease could expire: a successful attempt sent at t
//     lets it act until t + TTL - TTL/5, because the backend counts TTL from when it acted,
//     which is after t;
//   - an instance that does not hold the lease asks again every TTL/5, or as soon as the
//     lease it saw will have expired, so it takes over a dead holder's lease right after the
//     lease expires.
//
// So a holder that dies is replaced within TTL (plus a round trip), and a holder that cannot
// reach the store stops TTL/5 before anyone else can start.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/luahost/luahost/engine/storage"
)

// Options configure an Elector.
type Options struct {
	// Name is the lease's name in the store.
	Name string
	// Instance names this instance in the lease's value and in logs.
	Instance string
	// TTL is the lease's length.
	TTL time.Duration
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
	// Log receives a line when this instance gains or loses the lease, when the holder it
	// sees changes, and when the store fails (the first failure of a burst).
	Log *slog.Logger
}

// Elector is one instance's side of a lease. Step and Run drive it; Holding, Status and
// Resign are safe from any goroutine.
type Elector struct {
	l      storage.Leaser
	name   string
	id     string // the lease's value while this instance holds it: "<instance>#<random>"
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
	logErr time.Duration // how often an ongoing store failure is logged again

	mu       sync.Mutex
	until    time.Time          // this instance may act before until; zero when it does not hold the lease
	term     context.Context    // ends when this instance stops holding the lease
	stopTerm context.CancelFunc // nil when not holding
	seen     string             // the holder the last answer named ("" before one)
	err      error              // the last attempt's error
	errSince time.Time          // start of the current failure burst
	errLog   time.Time          // last failure logged
	resigned bool
}

// New returns an Elector for this instance; nothing happens until Step or Run.
func New(l storage.Leaser, o Options) *Elector {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	var b [6]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return &Elector{l: l, name: o.Name, ttl: o.TTL, now: o.Now, log: o.Log.With("lease", o.Name),
		id: o.Instance + "#" + hex.EncodeToString(b[:]), logErr: time.Minute}
}

// Instance returns the instance part of a lease holder's value ("worker1" of
// "worker1#3fa9c2d1e0b4").
func Instance(holder string) string {
	if i := strings.LastIndexByte(holder, '#'); i >= 0 {
		return holder[:i]
	}
	return holder
}

// ID is the value this instance stores in the lease while it holds it: its instance name and
// a random part, so a restarted instance of the same name is another holder.
func (e *Elector) ID() string { return e.id }

func (e *Elector) renewEvery() time.Duration { return e.ttl / 3 }
func (e *Elector) margin() time.Duration     { return e.ttl / 5 }
func (e *Elector) standbyEvery() time.Duration {
	return e.ttl / 5
}
func (e *Elector) retryEvery() time.Duration { return e.ttl / 10 }

// Holding reports whether this instance holds the lease now, and a context that ends as soon
// as it may stop holding it (when the lease is lost, or resigned). A task run that starts
// only when Holding says so, under that context, never overlaps a run on another instance.
func (e *Elector) Holding() (context.Context, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopTerm == nil || !e.now().Before(e.until) {
		return nil, false
	}
	return e.term, true
}

// Status is what an Elector knows about its lease.
type Status struct {
	// Holding: this instance holds the lease (Until is when it stops unless it renews).
	Holding bool
	Until   time.Time
	// Holder is the instance the store last named as the holder ("" when it named none
	// yet); HolderID is its full value.
	Holder, HolderID string
	// Err is the last attempt's error (nil after a success).
	Err error
}

// Status returns the Elector's view of the lease.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{HolderID: e.seen, Holder: Instance(e.seen), Err: e.err}
	if e.stopTerm != nil && e.now().Before(e.until) {
		st.Holding, st.Until = true, e.until
	}
	return st
}

// Step makes one attempt to take or renew the lease and returns how long to wait before the
// next. It first drops a lease whose time has run out. Step is not safe to call concurrently
// with itself (Run calls it from one goroutine).
func (e *Elector) Step(ctx context.Context) time.Duration {
	sent := e.now()
	e.mu.Lock()
	if e.resigned {
		e.mu.Unlock()
		return e.standbyEvery()
	}
	e.expireLocked(sent)
	holding, until := e.stopTerm != nil, e.until
	e.mu.Unlock()

	// A renewal that has not answered by the end of the lease is useless: stop waiting then.
	timeout := e.renewEvery()
	if holding {
		timeout = min(timeout, until.Sub(sent))
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	cur, left, err := e.l.Lease(cctx, e.name, e.id, e.ttl)
	cancel()
	now := e.now()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.resigned {
		return e.standbyEvery()
	}
	if err != nil {
		e.failedLocked(now, err)
		e.expireLocked(now)
		if e.stopTerm != nil {
			return max(time.Millisecond, min(e.retryEvery(), e.until.Sub(now)))
		}
		return e.standbyEvery()
	}
	e.recoveredLocked(now)
	prev := e.seen
	e.seen = cur
	if cur == e.id {
		held := sent.Add(e.ttl - e.margin())
		if !now.Before(held) {
			// The answer came too late to act on: try again at once.
			e.expireLocked(now)
			return time.Millisecond
		}
		if e.stopTerm == nil {
			e.term, e.stopTerm = context.WithCancel(context.Background())
			e.log.Info("background tasks: this instance holds the lease and runs them",
				"instance", Instance(e.id), "ttl", e.ttl.String())
		}
		e.until = held
		return max(time.Millisecond, min(sent.Add(e.renewEvery()).Sub(now), held.Sub(now)))
	}
	if e.stopTerm != nil {
		// Only if this instance's claim expired in the store meanwhile (a pause longer than
		// the margin, or a store that lost its data).
		e.dropLocked("the store names another holder", cur)
	} else if cur != prev {
		e.log.Info("background tasks run on another instance, which holds the lease", "holder", Instance(cur))
	}
	wait := e.standbyEvery()
	if left >= 0 && left+time.Millisecond < wait {
		wait = left + time.Millisecond
	}
	return wait
}

// expireLocked drops the lease when its time has run out at now.
func (e *Elector) expireLocked(now time.Time) {
	if e.stopTerm != nil && !now.Before(e.until) {
		e.dropLocked("it could not be renewed in time", "")
	}
}

func (e *Elector) dropLocked(why, holder string) {
	e.stopTerm()
	e.stopTerm, e.term, e.until = nil, nil, time.Time{}
	args := []any{"instance", Instance(e.id), "reason", why}
	if holder != "" {
		args = append(args, "holder", Instance(holder))
	}
	if e.err != nil {
		args = append(args, "err", e.err)
	}
	e.log.Warn("background tasks: this instance lost the lease and stopped running them", args...)
}

func (e *Elector) failedLocked(now time.Time, err error) {
	first := e.err == nil
	e.err = err
	if first {
		e.errSince = now
	}
	if first || now.Sub(e.errLog) >= e.logErr {
		e.errLog = now
		e.log.Warn("background tasks: the lease store failed; retrying", "err", err,
			"failing_for", now.Sub(e.errSince).Round(time.Millisecond).String())
	}
}

func (e *Elector) recoveredLocked(now time.Time) {
	if e.err != nil {
		e.log.Info("background tasks: the lease store answers again",
			"failed_for", now.Sub(e.errSince).Round(time.Millisecond).String())
		e.err = nil
	}
}

// Run calls Step until ctx ends.
func (e *Elector) Run(ctx context.Context) {
	for {
		wait := e.Step(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Resign stops holding the lease for good and, if this instance held it when the store last
// answered, releases it in the store so another instance can take it at once. Call it once
// Run has returned and no task runs any more.
func (e *Elector) Resign(ctx context.Context) error {
	e.mu.Lock()
	e.resigned = true
	held := e.seen == e.id
	if e.stopTerm != nil {
		e.stopTerm()
		e.stopTerm, e.term, e.until = nil, nil, time.Time{}
	}
	e.mu.Unlock()
	if !held {
		return nil
	}
	if err := e.l.Release(ctx, e.name, e.id); err != nil {
		return fmt.Errorf("release the background lease %q: %w", e.name, err)
	}
	e.log.Info("background tasks: this instance released the lease", "instance", Instance(e.id))
	return nil
}
