package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/luahost/luahost/engine/storage"
)

// RunLeaser checks a backend's storage.Leaser: a lease has one holder at a time, renews for
// its holder only, expires, can be released by its holder only, and is apart from every
// namespace. open is as for Run; each call must reach the same leases (a new client of the
// same server stands for another process). It takes about two seconds (expiry waits overlap).
func RunLeaser(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()
	leaser := func(t *testing.T) storage.Leaser {
		t.Helper()
		s := open(t)
		l, ok := s.(storage.Leaser)
		if !ok {
			t.Fatalf("%T does not implement storage.Leaser", s)
		}
		return l
	}
	// name is a lease name unique to the subtest and run.
	name := func(t *testing.T) string { return Namespace(t, "lease") }
	lease := func(t *testing.T, l storage.Leaser, name, holder string, ttl time.Duration) (string, time.Duration) {
		t.Helper()
		cur, left, err := l.Lease(ctx, name, holder, ttl)
		if err != nil {
			t.Fatalf("Lease(%q, %q, %v): %v", name, holder, ttl, err)
		}
		return cur, left
	}
	release := func(t *testing.T, l storage.Leaser, name, holder string) {
		t.Helper()
		if err := l.Release(ctx, name, holder); err != nil {
			t.Fatalf("Release(%q, %q): %v", name, holder, err)
		}
	}
	const long = time.Minute

	t.Run("OneHolder", func(t *testing.T) {
		t.Parallel()
		a, b := leaser(t), leaser(t)
		n := name(t)
		t.Cleanup(func() { a.Release(ctx, n, "a") })
		if cur, left := lease(t, a, n, "a", long); cur != "a" || left != long {
			t.Fatalf("a free lease: got holder %q, %v left; want a, %v", cur, left, long)
		}
		cur, left := lease(t, b, n, "b", long)
		if cur != "a" {
			t.Fatalf("a lease a holds, asked for by b: got holder %q, want a", cur)
		}
		if left <= 0 || left > long {
			t.Errorf("a lease a holds: %v left, want within (0, %v]", left, long)
		}
		// The holder renews.
		if cur, _ := lease(t, a, n, "a", long); cur != "a" {
			t.Fatalf("a renewing: got holder %q", cur)
		}
		if cur, _ := lease(t, b, n, "b", long); cur != "a" {
			t.Fatalf("b after a renewed: got holder %q, want a", cur)
		}
	})

	t.Run("RenewExtends", func(t *testing.T) {
		t.Parallel()
		a, b := leaser(t), leaser(t)
		n := name(t)
		t.Cleanup(func() { a.Release(ctx, n, "a") })
		lease(t, a, n, "a", ttlShort)
		time.Sleep(ttlShort / 2)
		// Renewed for a long time: past the first expiry a still holds it.
		if cur, left := lease(t, a, n, "a", long); cur != "a" || left != long {
			t.Fatalf("renewal: got %q, %v left; want a, %v", cur, left, long)
		}
		time.Sleep(ttlWait - ttlShort/2)
		if cur, _ := lease(t, b, n, "b", long); cur != "a" {
			t.Fatalf("after the first ttl passed, b got holder %q; the renewal should have kept it a's", cur)
		}
	})

	t.Run("Expires", func(t *testing.T) {
		t.Parallel()
		a, b := leaser(t), leaser(t)
		n := name(t)
		t.Cleanup(func() { b.Release(ctx, n, "b") })
		lease(t, a, n, "a", ttlShort)
		if cur, _ := lease(t, b, n, "b", long); cur != "a" {
			t.Fatalf("before expiry: got holder %q, want a", cur)
		}
		time.Sleep(ttlWait)
		if cur, left := lease(t, b, n, "b", long); cur != "b" || left != long {
			t.Fatalf("after a's lease expired: got %q, %v left; want b, %v", cur, left, long)
		}
		// a's old claim is gone: a cannot renew it.
		if cur, _ := lease(t, a, n, "a", long); cur != "b" {
			t.Fatalf("a after losing it: got holder %q, want b", cur)
		}
	})

	t.Run("Release", func(t *testing.T) {
		t.Parallel()
		a, b := leaser(t), leaser(t)
		n := name(t)
		t.Cleanup(func() { b.Release(ctx, n, "b") })
		lease(t, a, n, "a", long)
		release(t, b, n, "b") // not b's: nothing happens
		if cur, _ := lease(t, b, n, "b", long); cur != "a" {
			t.Fatalf("after b released a lease it does not hold: got holder %q, want a", cur)
		}
		release(t, a, n, "a")
		if cur, _ := lease(t, b, n, "b", long); cur != "b" {
			t.Fatalf("after a released: got holder %q, want b at once", cur)
		}
		release(t, a, n, "a") // released twice, or never held: no error
	})

	t.Run("Race", func(t *testing.T) {
		t.Parallel()
		n := name(t)
		const contenders = 8
		ls := make([]storage.Leaser, contenders)
		for i := range ls {
			ls[i] = leaser(t)
		}
		var wg sync.WaitGroup
		got := make([]string, contenders)
		errs := make([]error, contenders)
		for i, l := range ls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], _, errs[i] = l.Lease(ctx, n, fmt.Sprint("h", i), long)
			}()
		}
		wg.Wait()
		winner := ""
		for i := range got {
			if errs[i] != nil {
				t.Fatalf("contender %d: %v", i, errs[i])
			}
			if winner == "" {
				winner = got[i]
			}
			if got[i] != winner {
				t.Fatalf("contenders saw different holders: %q", got)
			}
		}
		t.Cleanup(func() { ls[0].Release(ctx, n, winner) })
	})

	t.Run("ApartFromKeys", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		l := s.(storage.Leaser)
		ns := Namespace(t, "ns")
		t.Cleanup(func() { l.Release(ctx, "x", ns) })
		if err := s.Set(ctx, ns, "x", []byte(`"v"`), 0); err != nil {
			t.Fatal(err)
		}
		lease(t, l, "x", ns, long)
		lease(t, l, ns+":x", ns, long)
		t.Cleanup(func() { l.Release(ctx, ns+":x", ns) })
		v, found, err := s.Get(ctx, ns, "x")
		if err != nil || !found || string(v) != `"v"` {
			t.Fatalf("a key named like a lease: Get = %q, %v, %v; want \"v\"", v, found, err)
		}
		keys, err := s.List(ctx, ns, "")
		if err != nil || len(keys) != 1 {
			t.Fatalf("List = %q, %v; want only x", keys, err)
		}
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		t.Parallel()
		l := leaser(t)
		cases := []struct {
			name, holder string
			ttl          time.Duration
			invalidKey   bool
		}{
			{"", "a", long, true},
			{"n", "", long, true},
			{string(make([]byte, storage.MaxKeyLen+1)), "a", long, true},
			{"n", "a", 0, false},
			{"n", "a", time.Microsecond, false},
			{"n", "a", -time.Second, false},
		}
		for _, c := range cases {
			_, _, err := l.Lease(ctx, c.name, c.holder, c.ttl)
			if err == nil {
				t.Errorf("Lease(%.10q, %q, %v): no error", c.name, c.holder, c.ttl)
				continue
			}
			if errors.Is(err, storage.ErrInvalidKey) != c.invalidKey {
				t.Errorf("Lease(%.10q, %q, %v) = %v; wraps ErrInvalidKey: %v, want %v", c.name, c.holder, c.ttl, err, !c.invalidKey, c.invalidKey)
			}
		}
		if err := l.Release(ctx, "", "a"); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Release with an empty name: %v, want ErrInvalidKey", err)
		}
	})
}
