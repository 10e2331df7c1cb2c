package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// The elector against a fake store on a fake clock: every instant of a simulated run is
// checked, so "never two holders" is shown for each millisecond, not sampled.

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) advance(d time.Duration) { c.set(c.Now().Add(d)) }

var errDown = errors.New("store unreachable")

// fakeStore is one lease on a fake clock, with the failures a real store has.
type fakeStore struct {
	clock *fakeClock
	mu    sync.Mutex
	// holder and expiry are the lease in the store.
	holder string
	expiry time.Time
	// latency: the store acts this long after the call starts, and the answer arrives as
	// much later (the clock moves: only for tests with one elector).
	latency time.Duration
	// unreachable: calls from these holders fail before reaching the store.
	unreachable map[string]bool
	// loseAnswers: calls act in the store, but the caller gets an error.
	loseAnswers bool
	// failRate: the fraction of calls that fail (random, seeded by rnd).
	failRate float64
	rnd      *rand.Rand
	calls    int
}

func (f *fakeStore) Lease(ctx context.Context, name, holder string, ttl time.Duration) (string, time.Duration, error) {
	f.clock.advance(f.latency)
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.clock.advance(f.latency)
	f.calls++
	if f.unreachable[holder] || (f.failRate > 0 && f.rnd.Float64() < f.failRate) {
		return "", 0, errDown
	}
	now := f.clock.Now()
	if f.holder == "" || !now.Before(f.expiry) || f.holder == holder {
		f.holder, f.expiry = holder, now.Add(ttl)
	}
	if f.loseAnswers {
		return "", 0, errDown
	}
	return f.holder, f.expiry.Sub(now), nil
}

func (f *fakeStore) Release(ctx context.Context, name, holder string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unreachable[holder] {
		return errDown
	}
	if f.holder == holder {
		f.holder = ""
	}
	return nil
}

// heldBy is the store's holder at now ("" when none).
func (f *fakeStore) heldBy(now time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder == "" || !now.Before(f.expiry) {
		return ""
	}
	return f.holder
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const ttl = 2 * time.Second

func newRig() (*fakeClock, *fakeStore) {
	c := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	return c, &fakeStore{clock: c, unreachable: map[string]bool{}}
}

func newElector(c *fakeClock, s *fakeStore, name string) *Elector {
	return New(s, Options{Name: "bg", Instance: name, TTL: ttl, Now: c.Now, Log: quiet})
}

// sim steps electors on the fake clock, one millisecond at a time, each when its wait is
// over; check runs at every millisecond.
type sim struct {
	c     *fakeClock
	els   []*Elector
	next  []time.Time
	dead  []bool
	start time.Time
}

func newSim(c *fakeClock, els ...*Elector) *sim {
	s := &sim{c: c, els: els, next: make([]time.Time, len(els)), dead: make([]bool, len(els)), start: c.Now()}
	for i := range s.next {
		s.next[i] = c.Now()
	}
	return s
}

// run advances the clock by d, stepping the live electors; check sees each millisecond.
func (s *sim) run(d time.Duration, check func(now time.Time)) {
	end := s.c.Now().Add(d)
	for now := s.c.Now(); now.Before(end); now = now.Add(time.Millisecond) {
		s.c.set(now)
		for i, e := range s.els {
			if !s.dead[i] && !now.Before(s.next[i]) {
				s.next[i] = now.Add(e.Step(context.Background()))
				s.c.set(now) // a latency in the store does not move the others' time
			}
		}
		if check != nil {
			check(now)
		}
	}
}

// holders lists the live electors that may act now.
func (s *sim) holders() []int {
	var out []int
	for i, e := range s.els {
		if _, ok := e.Holding(); ok && !s.dead[i] {
			out = append(out, i)
		}
	}
	return out
}

func TestOneInstanceHoldsAndRenews(t *testing.T) {
	c, st := newRig()
	e := newElector(c, st, "a")
	if _, ok := e.Holding(); ok {
		t.Fatal("holding before the first attempt")
	}
	s := newSim(c, e)
	s.run(10*ttl, func(now time.Time) {
		if now.Equal(s.start) {
			return
		}
		if _, ok := e.Holding(); !ok {
			t.Fatalf("at %v: the only instance, with a working store, does not hold the lease", now.Sub(s.start))
		}
	})
	// Renewing every ttl/3: about 30 calls in 10 ttl, not one per millisecond.
	if st.calls < 25 || st.calls > 35 {
		t.Errorf("%d store calls in %v; want about 30 (a renewal every ttl/3)", st.calls, 10*ttl)
	}
	if got := e.Status(); !got.Holding || got.Holder != "a" || got.Err != nil {
		t.Errorf("Status = %+v; want holding, holder a, no error", got)
	}
}

// The holder's store goes away (a network partition): it stops acting before its lease can
// expire in the store, and the others take over only after that, leaving the margin between.
func TestPartitionedHolderStopsBeforeTakeover(t *testing.T) {
	c, st := newRig()
	a, b, cc := newElector(c, st, "a"), newElector(c, st, "b"), newElector(c, st, "c")
	s := newSim(c, a, b, cc)
	s.run(ttl, nil)
	if h := s.holders(); len(h) != 1 || h[0] != 0 {
		t.Fatalf("holders after start = %v; want [0] (a, which asked first)", h)
	}
	aCtx, _ := a.Holding()
	st.unreachable[a.ID()] = true
	cut := c.Now()
	var aStopped, taken time.Time
	s.run(3*ttl, func(now time.Time) {
		h := s.holders()
		if len(h) > 1 {
			t.Fatalf("at %v after the partition: %d instances hold the lease at once", now.Sub(cut), len(h))
		}
		if _, ok := a.Holding(); !ok && aStopped.IsZero() {
			aStopped = now
			if aCtx.Err() == nil {
				t.Fatalf("a stopped holding, but the context its running tasks use is not cancelled")
			}
		}
		if len(h) == 1 && h[0] != 0 && taken.IsZero() {
			taken = now
		}
	})
	if aStopped.IsZero() || taken.IsZero() {
		t.Fatalf("a stopped at %v, another took over at %v: want both", aStopped, taken)
	}
	if gap := taken.Sub(aStopped); gap < ttl/5-2*time.Millisecond {
		t.Errorf("takeover %v after a stopped; want at least the margin ttl/5 = %v", gap, ttl/5)
	}
	if d := taken.Sub(cut); d > ttl+2*time.Millisecond {
		t.Errorf("takeover %v after a's last chance to renew; want within the lease, %v", d, ttl)
	}
	if got := a.Status(); got.Holding || got.Err == nil {
		t.Errorf("a's Status = %+v; want not holding, with the store's error", got)
	}
}

// The holder dies (kill -9): another instance takes over right after the lease expires.
func TestDeadHolderReplacedWithinTTL(t *testing.T) {
	for _, killAt := range []time.Duration{0, ttl / 7, ttl / 3, ttl/3 + 1, ttl / 2} {
		t.Run(fmt.Sprint(killAt), func(t *testing.T) {
			c, st := newRig()
			a, b := newElector(c, st, "a"), newElector(c, st, "b")
			s := newSim(c, a, b)
			s.run(ttl+killAt, nil)
			if h := s.holders(); len(h) != 1 || h[0] != 0 {
				t.Fatalf("holders = %v; want [0]", h)
			}
			s.dead[0] = true
			killed := c.Now()
			var taken time.Time
			s.run(2*ttl, func(now time.Time) {
				if _, ok := b.Holding(); ok && taken.IsZero() {
					taken = now
					if st.heldBy(now) != b.ID() {
						t.Fatalf("b acts as holder while the store says %q", st.heldBy(now))
					}
				}
			})
			if taken.IsZero() {
				t.Fatal("b never took over")
			}
			if d := taken.Sub(killed); d > ttl+2*time.Millisecond {
				t.Errorf("b took over %v after a died; want within the lease, %v", d, ttl)
			}
		})
	}
}

// Random failures of the store for every instance, for a long run: never two holders, and
// someone holds the lease most of the time.
func TestFlakyStoreNeverTwoHolders(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c, st := newRig()
			st.failRate = 0.3
			st.rnd = rand.New(rand.NewPCG(seed, 1))
			s := newSim(c, newElector(c, st, "a"), newElector(c, st, "b"), newElector(c, st, "c"))
			held, total := 0, 0
			s.run(60*ttl, func(now time.Time) {
				h := s.holders()
				if len(h) > 1 {
					t.Fatalf("at %v: instances %v hold the lease at once", now.Sub(s.start), h)
				}
				total++
				if len(h) == 1 {
					held++
				}
			})
			if frac := float64(held) / float64(total); frac < 0.8 {
				t.Errorf("someone held the lease %.0f%% of the time with 30%% of calls failing; want at least 80%%", frac*100)
			}
		})
	}
}

// A renewal that takes effect in the store but whose answer is lost keeps the holder safe:
// it goes by its last answered renewal and stops in time.
func TestLostAnswers(t *testing.T) {
	c, st := newRig()
	a, b := newElector(c, st, "a"), newElector(c, st, "b")
	s := newSim(c, a, b)
	s.run(ttl, nil)
	st.loseAnswers = true
	s.run(ttl, func(now time.Time) {
		if _, ok := a.Holding(); ok && st.heldBy(now) != a.ID() {
			t.Fatalf("a acts as holder at %v while the store says %q", now.Sub(s.start), st.heldBy(now))
		}
	})
	if _, ok := a.Holding(); ok {
		t.Fatal("a still acts as holder a lease after its last answer")
	}
	st.loseAnswers = false
	s.run(ttl, nil)
	if h := s.holders(); len(h) != 1 || h[0] != 0 {
		t.Fatalf("holders once answers arrive again = %v; want [0] (a renewed it all along)", h)
	}
}

// Latency: the store acts after the request left, and the holder counts its lease from when
// it sent the request, so a slow store shortens its time and a very slow one ends it.
func TestLatency(t *testing.T) {
	cases := []struct {
		latency time.Duration
		holds   bool
	}{
		{0, true},
		{50 * time.Millisecond, true},
		{ttl / 3, true},
		// The answer to a request sent at t arrives at t+2*latency, past t+ttl-margin.
		{ttl/2 - ttl/10 + time.Millisecond, false},
	}
	for _, tc := range cases {
		t.Run(tc.latency.String(), func(t *testing.T) {
			c, st := newRig()
			st.latency = tc.latency
			a := newElector(c, st, "a")
			sent := c.Now()
			a.Step(context.Background())
			_, ok := a.Holding()
			if ok != tc.holds {
				t.Fatalf("holding after one attempt with latency %v: %v, want %v", tc.latency, ok, tc.holds)
			}
			if ok {
				want := sent.Add(ttl - ttl/5)
				if got := a.Status().Until; !got.Equal(want) {
					t.Errorf("held until %v after sending; want %v (ttl minus the margin, from sending)", got.Sub(sent), want.Sub(sent))
				}
				if st.expiry.Before(a.Status().Until.Add(ttl / 5)) {
					t.Errorf("store expiry %v is less than the margin after the holder's %v", st.expiry.Sub(sent), a.Status().Until.Sub(sent))
				}
			}
		})
	}
}

// The store names another holder while this one thinks it holds the lease (it lost its data,
// or this process was paused past the lease): this one stops at its next renewal.
func TestOverwrittenLeaseDropsAtNextRenewal(t *testing.T) {
	c, st := newRig()
	a := newElector(c, st, "a")
	s := newSim(c, a)
	s.run(ttl, nil)
	ctx, ok := a.Holding()
	if !ok {
		t.Fatal("a does not hold the lease")
	}
	st.mu.Lock()
	st.holder, st.expiry = "z#1", c.Now().Add(time.Hour)
	st.mu.Unlock()
	s.run(ttl/3+time.Millisecond, nil)
	if _, ok := a.Holding(); ok {
		t.Fatal("a still holds the lease after a renewal answered that z holds it")
	}
	if ctx.Err() == nil {
		t.Error("the tasks' context was not cancelled")
	}
	if got := a.Status().Holder; got != "z" {
		t.Errorf("Status().Holder = %q, want z", got)
	}
}

// Resign releases the lease: a waiting instance takes it at its next attempt instead of
// after the lease expires; a resigned elector never takes it again.
func TestResignHandsOver(t *testing.T) {
	c, st := newRig()
	a, b := newElector(c, st, "a"), newElector(c, st, "b")
	s := newSim(c, a, b)
	s.run(ttl, nil)
	ctx, _ := a.Holding()
	if err := a.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == nil {
		t.Error("Resign did not cancel the tasks' context")
	}
	if _, ok := a.Holding(); ok {
		t.Fatal("a holds the lease after Resign")
	}
	resigned := c.Now()
	var taken time.Time
	s.run(ttl, func(now time.Time) {
		if _, ok := b.Holding(); ok && taken.IsZero() {
			taken = now
		}
		if _, ok := a.Holding(); ok {
			t.Fatal("a took the lease again after resigning")
		}
	})
	if taken.IsZero() || taken.Sub(resigned) > ttl/5+time.Millisecond {
		t.Errorf("b took over %v after a resigned; want within ttl/5 = %v", taken.Sub(resigned), ttl/5)
	}
	// Resigning without holding the lease does not touch the store.
	calls := st.calls
	if err := a.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.heldBy(c.Now()) != b.ID() || st.calls != calls {
		t.Errorf("a second Resign of a non-holder changed the store")
	}
}

func TestInstance(t *testing.T) {
	for in, want := range map[string]string{"worker1#3fa9c2d1e0b4": "worker1", "a#b#c": "a#b", "plain": "plain", "": ""} {
		if got := Instance(in); got != want {
			t.Errorf("Instance(%q) = %q, want %q", in, got, want)
		}
	}
	c, st := newRig()
	a, a2 := newElector(c, st, "a"), newElector(c, st, "a")
	if a.ID() == a2.ID() || Instance(a.ID()) != "a" {
		t.Errorf("IDs %q and %q: want distinct, both of instance a", a.ID(), a2.ID())
	}
}
