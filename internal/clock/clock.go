// Package clock is the fake time `luahost test` runs modules on: a clock
// that stands still until the test moves it, and runs the timers that
// fall due as it moves. The engine takes one from the context given to
// engine.New (package testhooks), so embedders never see it; without one
// the engine uses real time and this package plays no part.
//
// What follows the fake clock in the engine: api.sleep (which moves the
// clock itself, see the engine), api.looping_background_call and
// api.delayed_background_call, api.get_current_time_msec, the time
// library's now and now_ms, os.time and os.date, and the expiry of
// api.store keys when the store is storage.NewMemory(fake.Now).
package clock

import (
	"errors"
	"sort"
	"sync"
	"time"
)

// Fake is a clock that moves only when told to. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	seq     int
	pending []*entry
}

type entry struct {
	at  time.Time
	seq int // keeps entries due at the same time in scheduling order
	fn  func()
}

// MaxRunsPerAdvance bounds the timer runs one Advance makes, so that a
// 1 ms loop and an advance of a day cannot keep a test busy for hours.
const MaxRunsPerAdvance = 100_000

// ErrTooManyRuns is returned by Advance when it stopped at
// MaxRunsPerAdvance.
var ErrTooManyRuns = errors.New("more than 100000 timer runs in one advance: advance in smaller steps or lengthen the timer's interval")

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now is the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc runs fn when the clock has moved d past now (during an
// Advance, on the advancing goroutine). stop cancels it and reports
// whether it had not run yet.
func (f *Fake) AfterFunc(d time.Duration, fn func()) (stop func() bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	e := &entry{at: f.now.Add(d), seq: f.seq, fn: fn}
	f.pending = append(f.pending, e)
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, p := range f.pending {
			if p == e {
				f.pending = append(f.pending[:i], f.pending[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Advance moves the clock d forward. Each function scheduled in that span
// runs, in time order, with the clock reading its time; Advance returns
// when the last has returned. A function may schedule more (a looping
// timer) and may itself advance the clock (a timer that sleeps).
func (f *Fake) Advance(d time.Duration) error {
	f.mu.Lock()
	target := f.now.Add(d)
	for runs := 0; ; runs++ {
		e := f.next(target)
		if e == nil {
			break
		}
		if runs == MaxRunsPerAdvance {
			f.mu.Unlock()
			return ErrTooManyRuns
		}
		if e.at.After(f.now) {
			f.now = e.at
		}
		f.mu.Unlock()
		e.fn()
		f.mu.Lock()
	}
	if target.After(f.now) {
		f.now = target
	}
	f.mu.Unlock()
	return nil
}

// next removes and returns the earliest entry due by target. f.mu held.
func (f *Fake) next(target time.Time) *entry {
	if len(f.pending) == 0 {
		return nil
	}
	sort.SliceStable(f.pending, func(i, j int) bool {
		a, b := f.pending[i], f.pending[j]
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		return a.seq < b.seq
	})
	e := f.pending[0]
	if e.at.After(target) {
		return nil
	}
	f.pending = f.pending[1:]
	return e
}

// Pending is how many functions wait for the clock.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}
