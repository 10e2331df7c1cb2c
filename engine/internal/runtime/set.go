package runtime

import (
	"context"
	"sync/atomic"
)

// Set is the instances of one module generation (`instances: N`): N
// independent states behind one dispatcher. A call goes to an idle
// instance when there is one, else to the least loaded; it stays on that
// instance for its whole life (its coroutine lives there). Like
// OpenResty's per-worker VMs, module-level Lua variables are per instance.
type Set struct {
	rts  []*Runtime
	next atomic.Uint32
}

// NewSet returns the dispatcher over rts (instance 1 first).
func NewSet(rts []*Runtime) *Set { return &Set{rts: rts} }

// Len is the number of instances.
func (s *Set) Len() int { return len(s.rts) }

// Instance returns instance i (1-based).
func (s *Set) Instance(i int) *Runtime { return s.rts[i-1] }

// Invoke runs c on an idle (or the least loaded) instance.
func (s *Set) Invoke(ctx context.Context, c Call) error {
	if len(s.rts) == 1 {
		return s.rts[0].Invoke(ctx, c)
	}
	return s.pick().Invoke(ctx, c)
}

// pick chooses an instance, starting the search at a rotating offset so
// idle instances share the work.
func (s *Set) pick() *Runtime {
	n := uint32(len(s.rts))
	start := s.next.Add(1)
	best := s.rts[start%n]
	bestLoad := best.load.Load()
	for i := uint32(0); i < n && bestLoad > 0; i++ {
		r := s.rts[(start+i)%n]
		if l := r.load.Load(); l < bestLoad {
			best, bestLoad = r, l
		}
	}
	return best
}

// Close closes every instance, at once.
func (s *Set) Close() {
	done := make(chan struct{}, len(s.rts))
	for _, r := range s.rts {
		go func() {
			r.Close()
			done <- struct{}{}
		}()
	}
	for range s.rts {
		<-done
	}
}
