// Package storagetest checks that a storage.Store behaves as luahost's backends must: one
// behavioural suite, run by the tests of every backend (memory in engine/storage, bolt and
// redis in their packages) and usable for a backend written elsewhere:
//
//	func TestMyBackend(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { ... })
//	}
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/luahost/luahost/engine/storage"
)

// runID keeps the namespaces of concurrent test runs against one shared server apart.
var runID = fmt.Sprintf("t%x%x", time.Now().UnixNano()&0xffffffff, os.Getpid())

// NamespacePrefix starts every namespace Namespace returns in this process, so that a test
// of a shared server can delete what it wrote.
func NamespacePrefix() string { return runID }

// Namespace returns a namespace unique to the running test and process, ending in name.
func Namespace(t testing.TB, name string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	return runID + "_" + clean + "_" + name
}

// ttlShort is long enough to see a key before it expires even under -race, and short enough
// to wait for; ttlWait is comfortably past it.
const (
	ttlShort = 1100 * time.Millisecond
	ttlWait  = 1500 * time.Millisecond
)

// Run checks the behaviour every backend shares, in parallel subtests (so the TTL waits
// overlap; Run takes about two seconds plus the backend's own time). open returns a new store
// for the running subtest and closes it in t.Cleanup; a second call within the same subtest
// must reach the same data (a reopened file, a new client of the same server). The first
// subtest checks that Close stops every goroutine the store started, so the test calling
// Run must not run in parallel with others (no t.Parallel).
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	run(t, open, false)
}

// RunEphemeral is Run for a backend that keeps nothing once closed (the memory backend): the
// Reopen subtest is skipped.
func RunEphemeral(t *testing.T, open func(t *testing.T) storage.Store) {
	run(t, open, true)
}

func run(t *testing.T, open func(t *testing.T) storage.Store, ephemeral bool) {
	ctx := context.Background()

	mustSet := func(t *testing.T, s storage.Store, ns, key, val string, ttl time.Duration) {
		t.Helper()
		if err := s.Set(ctx, ns, key, []byte(val), ttl); err != nil {
			t.Fatalf("Set(%q, %q): %v", ns, key, err)
		}
	}
	get := func(t *testing.T, s storage.Store, ns, key string) (string, bool) {
		t.Helper()
		v, found, err := s.Get(ctx, ns, key)
		if err != nil {
			t.Fatalf("Get(%q, %q): %v", ns, key, err)
		}
		if !found && v != nil {
			t.Fatalf("Get(%q, %q): not found but value %q", ns, key, v)
		}
		if found && v == nil {
			t.Fatalf("Get(%q, %q): found but a nil value", ns, key)
		}
		return string(v), found
	}
	wantValue := func(t *testing.T, s storage.Store, ns, key, want string) {
		t.Helper()
		got, found := get(t, s, ns, key)
		if !found || got != want {
			t.Fatalf("Get(%q) = %q, %v; want %q, true", key, got, found, want)
		}
	}
	wantMissing := func(t *testing.T, s storage.Store, ns, key string) {
		t.Helper()
		if got, found := get(t, s, ns, key); found {
			t.Fatalf("Get(%q) = %q, true; want missing", key, got)
		}
	}
	incr := func(t *testing.T, s storage.Store, ns, key string, by int64, ttl time.Duration) int64 {
		t.Helper()
		n, err := s.Incr(ctx, ns, key, by, ttl)
		if err != nil {
			t.Fatalf("Incr(%q, %d, %v): %v", key, by, ttl, err)
		}
		return n
	}
	list := func(t *testing.T, s storage.Store, ns, prefix string) []string {
		t.Helper()
		keys, err := s.List(ctx, ns, prefix)
		if err != nil {
			t.Fatalf("List(%q, %q): %v", ns, prefix, err)
		}
		if keys == nil {
			t.Fatalf("List(%q, %q) = nil; want a non-nil slice", ns, prefix)
		}
		return keys
	}
	wantList := func(t *testing.T, s storage.Store, ns, prefix string, want ...string) {
		t.Helper()
		if want == nil {
			want = []string{}
		}
		if got := list(t, s, ns, prefix); !reflect.DeepEqual(got, want) {
			t.Fatalf("List(%q) = %q; want %q", prefix, got, want)
		}
	}

	// Not parallel, and first, so that it runs alone: it sees every goroutine.
	t.Run("NoGoroutineOutlivesClose", func(t *testing.T) {
		before := goroutines()
		s := open(t)
		ns := Namespace(t, "m")
		mustSet(t, s, ns, "k", `1`, 0)
		incr(t, s, ns, "n", 1, 0)
		if _, err := s.CompareAndSwap(ctx, ns, "k", []byte(`1`), []byte(`2`), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Txn(ctx, ns, []string{"k", "n"}, transfer("n", "k", 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if left := goroutinesLeft(before, 5*time.Second); len(left) > 0 {
			t.Fatalf("%d goroutines outlived Close:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		values := map[string]string{
			"json":                       `{"a":[1,2,3],"b":"héllo ☃","c":null,"d":true}`,
			"string":                     `"just a string"`,
			"number":                     `3.25`,
			"binary":                     "\x00\xff\x01 raw",
			"empty":                      "",
			"key with spaces/and:colons": `1`,
			"ünïcödé":                    `[]`,
		}
		for k, v := range values {
			mustSet(t, s, ns, k, v, 0)
		}
		for k, v := range values {
			wantValue(t, s, ns, k, v)
		}
		// Neither the caller's slice nor the returned one aliases the stored value.
		in := []byte(`"original"`)
		if err := s.Set(ctx, ns, "alias", in, 0); err != nil {
			t.Fatal(err)
		}
		copy(in, "XXXXXXXXXX")
		out, _, _ := s.Get(ctx, ns, "alias")
		copy(out, "YYYYYYYYYY")
		wantValue(t, s, ns, "alias", `"original"`)
	})

	t.Run("NamespacesIsolated", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a, b, ab := Namespace(t, "a"), Namespace(t, "b"), Namespace(t, "ab")
		mustSet(t, s, a, "k", `"in a"`, 0)
		mustSet(t, s, b, "k", `"in b"`, 0)
		mustSet(t, s, ab, "k2", `"in ab"`, 0) // a's name is a prefix of ab's
		mustSet(t, s, a, "only-a", `1`, 0)
		wantValue(t, s, a, "k", `"in a"`)
		wantValue(t, s, b, "k", `"in b"`)
		wantMissing(t, s, b, "only-a")
		wantMissing(t, s, a, "k2")
		wantList(t, s, a, "", "k", "only-a")
		wantList(t, s, ab, "", "k2")
		if n := incr(t, s, b, "only-a", 1, 0); n != 1 {
			t.Fatalf("Incr in b = %d; want 1 (a's key must not count)", n)
		}
		if err := s.Delete(ctx, b, "k"); err != nil {
			t.Fatal(err)
		}
		wantValue(t, s, a, "k", `"in a"`)
		wantMissing(t, s, b, "k")
	})

	t.Run("OverwriteDeleteMissing", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		wantMissing(t, s, ns, "never-set")
		wantMissing(t, s, Namespace(t, "never-used"), "k")
		mustSet(t, s, ns, "k", `1`, 0)
		mustSet(t, s, ns, "k", `{"x":2}`, 0)
		wantValue(t, s, ns, "k", `{"x":2}`)
		if err := s.Delete(ctx, ns, "k"); err != nil {
			t.Fatal(err)
		}
		wantMissing(t, s, ns, "k")
		wantList(t, s, ns, "")
		if err := s.Delete(ctx, ns, "k"); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
		if err := s.Delete(ctx, Namespace(t, "never-used"), "k"); err != nil {
			t.Fatalf("deleting in an unused namespace: %v", err)
		}
	})

	t.Run("TTL", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		mustSet(t, s, ns, "expires", `"soon"`, ttlShort)
		mustSet(t, s, ns, "cleared", `"first"`, ttlShort)
		mustSet(t, s, ns, "cleared", `"kept"`, 0) // ttl 0 clears the earlier expiry
		mustSet(t, s, ns, "forever", `1`, 0)
		mustSet(t, s, ns, "set-then-incr", `5`, ttlShort)
		mustSet(t, s, ns, "reborn", `7`, ttlShort)
		// Incr's ttl applies only when it creates the key.
		if n := incr(t, s, ns, "window", 1, ttlShort); n != 1 {
			t.Fatalf("first Incr = %d", n)
		}
		if n := incr(t, s, ns, "window", 1, time.Hour); n != 2 {
			t.Fatalf("second Incr = %d", n)
		}
		if n := incr(t, s, ns, "window", 1, 0); n != 3 {
			t.Fatalf("third Incr = %d", n)
		}
		if n := incr(t, s, ns, "set-then-incr", 1, time.Hour); n != 6 {
			t.Fatalf("Incr on a set key = %d", n)
		}
		wantValue(t, s, ns, "expires", `"soon"`)
		wantList(t, s, ns, "", "cleared", "expires", "forever", "reborn", "set-then-incr", "window")

		time.Sleep(ttlWait)

		wantList(t, s, ns, "", "cleared", "forever")
		wantMissing(t, s, ns, "expires")
		wantMissing(t, s, ns, "window")
		wantMissing(t, s, ns, "set-then-incr") // Incr kept the expiry Set gave it
		wantValue(t, s, ns, "cleared", `"kept"`)
		wantValue(t, s, ns, "forever", `1`)
		// An expired key counts as 0, and a new window starts.
		if n := incr(t, s, ns, "reborn", 1, time.Hour); n != 1 {
			t.Fatalf("Incr on an expired key = %d; want 1", n)
		}
		if n := incr(t, s, ns, "window", 2, 0); n != 2 {
			t.Fatalf("Incr on an expired counter = %d; want 2", n)
		}
		// Setting an expired key works too.
		mustSet(t, s, ns, "expires", `"again"`, 0)
		wantValue(t, s, ns, "expires", `"again"`)
	})

	t.Run("Incr", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		if n := incr(t, s, ns, "c", 5, 0); n != 5 {
			t.Fatalf("Incr from missing = %d; want 5", n)
		}
		if n := incr(t, s, ns, "c", -7, 0); n != -2 {
			t.Fatalf("Incr -7 = %d; want -2", n)
		}
		if n := incr(t, s, ns, "c", 0, 0); n != -2 {
			t.Fatalf("Incr 0 = %d; want -2", n)
		}
		wantValue(t, s, ns, "c", `-2`) // decimal text, valid JSON
		if n := incr(t, s, ns, "zero", 0, time.Hour); n != 0 {
			t.Fatalf("Incr 0 from missing = %d", n)
		}
		wantValue(t, s, ns, "zero", `0`)
		mustSet(t, s, ns, "json-int", `41`, 0)
		if n := incr(t, s, ns, "json-int", 1, time.Hour); n != 42 {
			t.Fatalf("Incr on a Set integer = %d; want 42", n)
		}
		mustSet(t, s, ns, "big", `9223372036854775806`, 0)
		if n := incr(t, s, ns, "big", 1, 0); n != 1<<63-1 {
			t.Fatalf("Incr to max = %d", n)
		}
		for _, ttl := range []time.Duration{0, time.Hour} {
			_, err := s.Incr(ctx, ns, "big", 1, ttl)
			if !errors.Is(err, storage.ErrOverflow) || storage.IsUnavailable(err) {
				t.Fatalf("Incr past max (ttl %v): %v; want storage.ErrOverflow", ttl, err)
			}
		}
		wantValue(t, s, ns, "big", `9223372036854775807`)
		mustSet(t, s, ns, "small", `-9223372036854775808`, 0)
		if _, err := s.Incr(ctx, ns, "small", -1, 0); !errors.Is(err, storage.ErrOverflow) {
			t.Fatalf("Incr past min: %v; want storage.ErrOverflow", err)
		}
	})

	t.Run("IncrNotInteger", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		bad := []string{`"abc"`, `"5"`, `1.5`, `5.0`, `1e3`, ` 5`, `5 `, `+5`, `05`, `-0`, `-`, ``,
			`{"n":1}`, `true`, `null`, `99999999999999999999`, `-9223372036854775809`}
		for i, v := range bad {
			key := fmt.Sprintf("bad%d", i)
			mustSet(t, s, ns, key, v, 0)
			for _, ttl := range []time.Duration{0, time.Hour} {
				n, err := s.Incr(ctx, ns, key, 1, ttl)
				if !errors.Is(err, storage.ErrNotInteger) {
					t.Fatalf("Incr on %q (ttl %v) = %d, %v; want storage.ErrNotInteger", v, ttl, n, err)
				}
				if !strings.Contains(err.Error(), key) {
					t.Fatalf("error %q does not name the key %q", err, key)
				}
				if storage.IsUnavailable(err) {
					t.Fatalf("storage.IsUnavailable(%v) = true for a usage error", err)
				}
			}
			wantValue(t, s, ns, key, v) // untouched
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		for _, k := range []string{"b1", "a2", "a10", "a1", "c", "user:@alice:example.org", "user:@bob:example.org"} {
			mustSet(t, s, ns, k, `0`, 0)
		}
		wantList(t, s, ns, "", "a1", "a10", "a2", "b1", "c", "user:@alice:example.org", "user:@bob:example.org")
		wantList(t, s, ns, "a", "a1", "a10", "a2")
		wantList(t, s, ns, "a1", "a1", "a10")
		wantList(t, s, ns, "user:", "user:@alice:example.org", "user:@bob:example.org")
		wantList(t, s, ns, "zz")
		wantList(t, s, Namespace(t, "unused"), "")
	})

	t.Run("ListGlobCharacters", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		keys := []string{"x*1", "x?2", "x[3]", `x\4`, "x^5", "x-6", "xa", "xy", "[ab]", "a", "b"}
		for _, k := range keys {
			mustSet(t, s, ns, k, `0`, 0)
		}
		wantList(t, s, ns, "x*", "x*1")
		wantList(t, s, ns, "x?", "x?2")
		wantList(t, s, ns, "x[", "x[3]")
		wantList(t, s, ns, "x[3", "x[3]")
		wantList(t, s, ns, `x\`, `x\4`)
		wantList(t, s, ns, "x^", "x^5")
		wantList(t, s, ns, "[ab]", "[ab]")
		wantList(t, s, ns, "*")
		wantList(t, s, ns, "?")
		// A namespace with glob characters must not match its look-alikes.
		star, plain := Namespace(t, "g*"), Namespace(t, "gX")
		mustSet(t, s, star, "k", `1`, 0)
		mustSet(t, s, plain, "k", `2`, 0)
		wantList(t, s, star, "", "k")
		if err := s.Delete(ctx, star, "k"); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, star, "")
		wantList(t, s, plain, "", "k")
	})

	t.Run("ListLimit", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		var keys []string
		for i := 0; i < storage.MaxListKeys+50; i++ {
			keys = append(keys, fmt.Sprintf("k%06d", i))
		}
		bulkSet(t, s, ns, keys)
		got := list(t, s, ns, "")
		if len(got) != storage.MaxListKeys {
			t.Fatalf("List returned %d keys; want %d", len(got), storage.MaxListKeys)
		}
		if !reflect.DeepEqual(got, keys[:storage.MaxListKeys]) {
			t.Fatalf("List did not return the first %d keys in order: %q ... %q", storage.MaxListKeys, got[0], got[len(got)-1])
		}
		if got := list(t, s, ns, "k0001"); len(got) != 100 || got[0] != "k000100" || got[99] != "k000199" {
			t.Fatalf("List(k0001) = %d keys: %q", len(got), got)
		}
	})

	t.Run("ConcurrentIncr", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		const goroutines, each = 20, 10
		for _, ttl := range []time.Duration{0, time.Hour} {
			key := fmt.Sprintf("counter-%v", ttl)
			results := make(chan int64, goroutines*each)
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						n, err := s.Incr(ctx, ns, key, 1, ttl)
						if err != nil {
							t.Error(err)
							return
						}
						results <- n
					}
				}()
			}
			wg.Wait()
			close(results)
			seen := make(map[int64]bool)
			for n := range results {
				if seen[n] {
					t.Fatalf("Incr returned %d twice", n)
				}
				seen[n] = true
			}
			if len(seen) != goroutines*each {
				t.Fatalf("got %d results", len(seen))
			}
			wantValue(t, s, ns, key, "200")
		}
	})

	t.Run("Reopen", func(t *testing.T) {
		t.Parallel()
		if ephemeral {
			t.Skip("the backend keeps nothing across reopening (RunEphemeral)")
		}
		s := open(t)
		ns := Namespace(t, "m")
		mustSet(t, s, ns, "doc", `{"kept":true}`, 0)
		mustSet(t, s, ns, "ttl", `1`, time.Hour)
		incr(t, s, ns, "count", 3, 0)
		if set, err := s.SetIfAbsent(ctx, ns, "token", []byte(`"owner"`), time.Hour); !set || err != nil {
			t.Fatalf("SetIfAbsent = %v, %v", set, err)
		}
		if err := s.Txn(ctx, ns, []string{"txn"}, func(map[string][]byte) (map[string]storage.Write, error) {
			return map[string]storage.Write{"txn": {Value: []byte(`"written"`)}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := open(t)
		wantValue(t, s2, ns, "doc", `{"kept":true}`)
		wantValue(t, s2, ns, "ttl", `1`)
		wantValue(t, s2, ns, "txn", `"written"`)
		if set, err := s2.SetIfAbsent(ctx, ns, "token", []byte(`"thief"`), 0); set || err != nil {
			t.Fatalf("SetIfAbsent after reopen = %v, %v; want false", set, err)
		}
		if n := incr(t, s2, ns, "count", 1, 0); n != 4 {
			t.Fatalf("Incr after reopen = %d; want 4", n)
		}
		wantList(t, s2, ns, "", "count", "doc", "token", "ttl", "txn")
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		check := func(what string, err error) {
			t.Helper()
			if err == nil {
				t.Fatalf("%s: no error", what)
			}
			if storage.IsUnavailable(err) {
				t.Fatalf("%s: IsUnavailable(%v) = true", what, err)
			}
		}
		invalidKey := func(what string, err error) {
			t.Helper()
			check(what, err)
			if !errors.Is(err, storage.ErrInvalidKey) {
				t.Fatalf("%s: %v does not wrap ErrInvalidKey", what, err)
			}
		}
		_, _, err := s.Get(ctx, ns, "")
		check("empty key", err)
		check("empty namespace", s.Set(ctx, "", "k", []byte(`1`), 0))
		check("namespace with ':'", s.Set(ctx, "a:b", "k", []byte(`1`), 0))
		check("long key", s.Set(ctx, ns, strings.Repeat("k", storage.MaxKeyLen+1), []byte(`1`), 0))
		check("negative ttl", s.Set(ctx, ns, "k", []byte(`1`), -time.Second))
		_, err = s.Incr(ctx, ns, "k", 1, -time.Second)
		check("negative incr ttl", err)
		_, err = s.List(ctx, "", "")
		check("list empty namespace", err)
		if !errors.Is(s.Delete(ctx, "a:b", "k"), storage.ErrInvalidKey) {
			t.Fatal("Delete with a bad namespace does not wrap ErrInvalidKey")
		}
		_, err = s.SetIfAbsent(ctx, ns, "", []byte(`1`), 0)
		invalidKey("SetIfAbsent empty key", err)
		_, err = s.SetIfAbsent(ctx, ns, "k", []byte(`1`), -time.Second)
		check("SetIfAbsent negative ttl", err)
		_, err = s.CompareAndSwap(ctx, "a:b", "k", nil, []byte(`1`), 0)
		invalidKey("CompareAndSwap bad namespace", err)
		_, err = s.CompareAndSwap(ctx, ns, "k", nil, []byte(`1`), -time.Second)
		check("CompareAndSwap negative ttl", err)
		noop := func(map[string][]byte) (map[string]storage.Write, error) {
			t.Error("fn called for invalid arguments")
			return nil, nil
		}
		invalidKey("Txn without keys", s.Txn(ctx, ns, nil, noop))
		invalidKey("Txn with an empty key", s.Txn(ctx, ns, []string{"a", ""}, noop))
		invalidKey("Txn with a long key", s.Txn(ctx, ns, []string{strings.Repeat("k", storage.MaxKeyLen+1)}, noop))
		invalidKey("Txn bad namespace", s.Txn(ctx, "a:b", []string{"a"}, noop))
		many := make([]string, storage.MaxTxnKeys+1)
		for i := range many {
			many[i] = fmt.Sprintf("k%d", i)
		}
		invalidKey("Txn with too many keys", s.Txn(ctx, ns, many, noop))
		for _, k := range []string{"k", "a", "k0"} {
			wantMissing(t, s, ns, k) // nothing was written by the calls above
		}

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err = s.Get(cctx, ns, "k")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Get with a cancelled context: %v", err)
		}
		if _, err := s.CompareAndSwap(cctx, ns, "k", nil, []byte(`1`), 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("CompareAndSwap with a cancelled context: %v", err)
		}
		if err := s.Txn(cctx, ns, []string{"k"}, noop); !errors.Is(err, context.Canceled) {
			t.Fatalf("Txn with a cancelled context: %v", err)
		}
		// A nil context is a mistake, reported as an error rather than a crash.
		var nilCtx context.Context
		_, _, err = s.Get(nilCtx, ns, "k")
		check("Get with a nil context", err)
		check("Set with a nil context", s.Set(nilCtx, ns, "k", []byte(`1`), 0))
		check("Txn with a nil context", s.Txn(nilCtx, ns, []string{"k"}, noop))
		_, err = s.List(nilCtx, ns, "")
		check("List with a nil context", err)
	})

	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		mustSet(t, s, ns, "k", `1`, 0)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		_, _, err := s.Get(ctx, ns, "k")
		if !errors.Is(err, storage.ErrClosed) || !storage.IsUnavailable(err) {
			t.Fatalf("Get after Close: %v; want ErrClosed, unavailable", err)
		}
		if err := s.Set(ctx, ns, "k", []byte(`2`), 0); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("Set after Close: %v", err)
		}
		if _, err := s.Incr(ctx, ns, "k", 1, 0); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("Incr after Close: %v", err)
		}
		if _, err := s.List(ctx, ns, ""); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("List after Close: %v", err)
		}
		if err := s.Delete(ctx, ns, "k"); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("Delete after Close: %v", err)
		}
		if _, err := s.SetIfAbsent(ctx, ns, "new", []byte(`1`), 0); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("SetIfAbsent after Close: %v", err)
		}
		if _, err := s.CompareAndSwap(ctx, ns, "k", []byte(`1`), []byte(`2`), 0); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("CompareAndSwap after Close: %v", err)
		}
		err = s.Txn(ctx, ns, []string{"k"}, func(map[string][]byte) (map[string]storage.Write, error) {
			return map[string]storage.Write{"k": {Value: []byte(`3`)}}, nil
		})
		if !errors.Is(err, storage.ErrClosed) || !storage.IsUnavailable(err) {
			t.Fatalf("Txn after Close: %v; want ErrClosed, unavailable", err)
		}
	})

	t.Run("SetIfAbsent", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		setIfAbsent := func(key string, val []byte, ttl time.Duration) bool {
			t.Helper()
			set, err := s.SetIfAbsent(ctx, ns, key, val, ttl)
			if err != nil {
				t.Fatalf("SetIfAbsent(%q): %v", key, err)
			}
			return set
		}
		if !setIfAbsent("k", []byte(`"first"`), 0) {
			t.Fatal("SetIfAbsent on a missing key = false")
		}
		if setIfAbsent("k", []byte(`"second"`), 0) {
			t.Fatal("SetIfAbsent on a present key = true")
		}
		wantValue(t, s, ns, "k", `"first"`)
		wantMissing(t, s, Namespace(t, "other"), "k") // another namespace's k is missing
		if set, err := s.SetIfAbsent(ctx, Namespace(t, "other"), "k", []byte(`1`), 0); !set || err != nil {
			t.Fatalf("SetIfAbsent in another namespace = %v, %v", set, err)
		}
		mustSet(t, s, ns, "empty", ``, 0) // an empty value is present
		if setIfAbsent("empty", []byte(`1`), 0) {
			t.Fatal("SetIfAbsent on a key holding an empty value = true")
		}
		wantValue(t, s, ns, "empty", ``)
		if !setIfAbsent("nil", nil, 0) { // nil stores an empty value, as Set does
			t.Fatal("SetIfAbsent(nil) = false")
		}
		wantValue(t, s, ns, "nil", ``)
		if err := s.Delete(ctx, ns, "k"); err != nil {
			t.Fatal(err)
		}
		if !setIfAbsent("k", []byte(`"after delete"`), 0) {
			t.Fatal("SetIfAbsent after Delete = false")
		}
		// The ttl applies to the value set; an expired key counts as missing.
		if !setIfAbsent("exp", []byte(`1`), ttlShort) {
			t.Fatal("SetIfAbsent(exp) = false")
		}
		if setIfAbsent("exp", []byte(`2`), 0) {
			t.Fatal("SetIfAbsent on an unexpired key = true")
		}
		mustSet(t, s, ns, "set-exp", `1`, ttlShort)
		time.Sleep(ttlWait)
		wantMissing(t, s, ns, "exp")
		if !setIfAbsent("exp", []byte(`3`), 0) || !setIfAbsent("set-exp", []byte(`4`), 0) {
			t.Fatal("SetIfAbsent on an expired key = false")
		}
		wantValue(t, s, ns, "exp", `3`)
		wantValue(t, s, ns, "set-exp", `4`)
		wantList(t, s, ns, "", "empty", "exp", "k", "nil", "set-exp")
	})

	t.Run("CompareAndSwap", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		type state *string // nil: missing
		str := func(v string) state { return &v }
		cases := []struct {
			name     string
			start    state
			old, new []byte
			swapped  bool
			end      state
		}{
			{"create", nil, nil, []byte(`"x"`), true, str(`"x"`)},
			{"create needs absence", str(`"a"`), nil, []byte(`"x"`), false, str(`"a"`)},
			{"missing is not a value", nil, []byte(`"a"`), []byte(`"x"`), false, nil},
			{"missing is not empty", nil, []byte{}, []byte(`"x"`), false, nil},
			{"delete a missing key", nil, nil, nil, true, nil},
			{"wrong old", str(`"a"`), []byte(`"b"`), []byte(`"x"`), false, str(`"a"`)},
			{"old is a prefix", str(`"a"x`), []byte(`"a"`), []byte(`"x"`), false, str(`"a"x`)},
			{"old is longer", str(`"a"`), []byte(`"a" `), []byte(`"x"`), false, str(`"a"`)},
			{"swap", str(`"a"`), []byte(`"a"`), []byte(`{"b":2}`), true, str(`{"b":2}`)},
			{"swap to empty", str(`"a"`), []byte(`"a"`), []byte{}, true, str(``)},
			{"delete", str(`"a"`), []byte(`"a"`), nil, true, nil},
			{"empty is not missing", str(``), nil, []byte(`"x"`), false, str(``)},
			{"swap from empty", str(``), []byte{}, []byte(`"x"`), true, str(`"x"`)},
			{"binary", str("\x00\xff"), []byte("\x00\xff"), []byte("\xff\x00"), true, str("\xff\x00")},
			{"binary mismatch", str("\x00\xff"), []byte("\x00\xfe"), []byte(`1`), false, str("\x00\xff")},
		}
		for i, c := range cases {
			key := fmt.Sprintf("case%d", i)
			if c.start != nil {
				mustSet(t, s, ns, key, *c.start, 0)
			}
			swapped, err := s.CompareAndSwap(ctx, ns, key, c.old, c.new, 0)
			if err != nil || swapped != c.swapped {
				t.Fatalf("%s: CompareAndSwap = %v, %v; want %v", c.name, swapped, err, c.swapped)
			}
			if c.end == nil {
				wantMissing(t, s, ns, key)
			} else {
				wantValue(t, s, ns, key, *c.end)
			}
		}
		// Neither the caller's new slice nor a later Get aliases the stored value.
		in := []byte(`"original"`)
		if ok, err := s.CompareAndSwap(ctx, ns, "alias", nil, in, 0); !ok || err != nil {
			t.Fatal(ok, err)
		}
		copy(in, "XXXXXXXXXX")
		wantValue(t, s, ns, "alias", `"original"`)

		// ttl applies to the new value as in Set: > 0 expires it, 0 clears an expiry. An
		// expired key counts as missing, whatever it held.
		mustSet(t, s, ns, "keeps", `1`, ttlShort)
		if ok, err := s.CompareAndSwap(ctx, ns, "keeps", []byte(`1`), []byte(`2`), 0); !ok || err != nil {
			t.Fatal(ok, err)
		}
		mustSet(t, s, ns, "expires", `1`, 0)
		if ok, err := s.CompareAndSwap(ctx, ns, "expires", []byte(`1`), []byte(`2`), ttlShort); !ok || err != nil {
			t.Fatal(ok, err)
		}
		mustSet(t, s, ns, "gone", `1`, ttlShort)
		mustSet(t, s, ns, "gone2", `1`, ttlShort)
		time.Sleep(ttlWait)
		wantValue(t, s, ns, "keeps", `2`)
		wantMissing(t, s, ns, "expires")
		if ok, err := s.CompareAndSwap(ctx, ns, "gone", []byte(`1`), []byte(`2`), 0); ok || err != nil {
			t.Fatalf("CompareAndSwap with the value of an expired key = %v, %v; want false", ok, err)
		}
		if ok, err := s.CompareAndSwap(ctx, ns, "gone2", nil, []byte(`3`), 0); !ok || err != nil {
			t.Fatalf("CompareAndSwap(old nil) on an expired key = %v, %v; want true", ok, err)
		}
		wantMissing(t, s, ns, "gone")
		wantValue(t, s, ns, "gone2", `3`)
	})

	t.Run("Txn", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		txn := func(keys []string, fn storage.TxnFunc) error {
			t.Helper()
			return s.Txn(ctx, ns, keys, fn)
		}
		mustSet(t, s, ns, "a", `1`, 0)
		mustSet(t, s, ns, "c", ``, 0)
		mustSet(t, s, ns, "d", `"keep"`, 0)
		calls := 0
		err := txn([]string{"a", "b", "c", "d", "a"}, func(vals map[string][]byte) (map[string]storage.Write, error) {
			calls++
			if len(vals) != 3 || string(vals["a"]) != `1` || vals["c"] == nil || len(vals["c"]) != 0 || string(vals["d"]) != `"keep"` {
				t.Errorf("vals = %q; want a=1, c empty, d, and no b", vals)
			}
			if _, ok := vals["b"]; ok {
				t.Error("a missing key is in vals")
			}
			vals["d"][1] = 'X' // fn owns vals: the stored value must not change
			return map[string]storage.Write{
				"a": {Value: nil},
				"b": {Value: []byte(`{"n":2}`)},
				"c": {Value: []byte(`3`)},
			}, nil
		})
		if err != nil || calls != 1 {
			t.Fatalf("Txn = %v after %d calls; want nil after 1 (no contention)", err, calls)
		}
		wantMissing(t, s, ns, "a")
		wantValue(t, s, ns, "b", `{"n":2}`)
		wantValue(t, s, ns, "c", `3`)
		wantValue(t, s, ns, "d", `"keep"`)

		// A read-only transaction writes nothing.
		if err := txn([]string{"b"}, func(map[string][]byte) (map[string]storage.Write, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, ns, "", "b", "c", "d")

		// Failing transactions write nothing, not even their valid writes.
		boom := errors.New("boom")
		writeB := storage.Write{Value: []byte(`"changed"`)}
		err = txn([]string{"b"}, func(map[string][]byte) (map[string]storage.Write, error) {
			return map[string]storage.Write{"b": writeB}, boom
		})
		if err != boom {
			t.Fatalf("Txn with a failing fn = %v; want fn's error as is", err)
		}
		err = txn([]string{"b"}, func(map[string][]byte) (map[string]storage.Write, error) {
			return map[string]storage.Write{"b": writeB, "undeclared": writeB}, nil
		})
		if !errors.Is(err, storage.ErrInvalidKey) || !strings.Contains(err.Error(), `"undeclared"`) || storage.IsUnavailable(err) {
			t.Fatalf("Txn writing a key outside its keys = %v; want ErrInvalidKey naming the key", err)
		}
		err = txn([]string{"b", "c"}, func(map[string][]byte) (map[string]storage.Write, error) {
			return map[string]storage.Write{"b": writeB, "c": {Value: []byte(`1`), TTL: -time.Second}}, nil
		})
		if err == nil || storage.IsUnavailable(err) {
			t.Fatalf("Txn writing a negative TTL = %v; want a usage error", err)
		}
		wantValue(t, s, ns, "b", `{"n":2}`)
		wantMissing(t, s, ns, "undeclared")

		// A panic in fn reaches the caller, and the store goes on working.
		func() {
			defer func() {
				if r := recover(); r != "fn panicked" {
					t.Fatalf("recovered %v; want fn's panic", r)
				}
			}()
			txn([]string{"b"}, func(map[string][]byte) (map[string]storage.Write, error) { panic("fn panicked") })
			t.Fatal("Txn returned after fn panicked")
		}()
		wantValue(t, s, ns, "b", `{"n":2}`)
		if err := txn([]string{"b"}, func(map[string][]byte) (map[string]storage.Write, error) {
			return map[string]storage.Write{"b": writeB}, nil
		}); err != nil {
			t.Fatalf("Txn after a panic: %v", err)
		}
		wantValue(t, s, ns, "b", `"changed"`)
		mustSet(t, s, ns, "b", `"set after the panic"`, 0)

		// The written values are copies; MaxTxnKeys keys fit in one transaction.
		keys := make([]string, storage.MaxTxnKeys)
		for i := range keys {
			keys[i] = fmt.Sprintf("many%03d", i)
		}
		buf := []byte(`"v"`)
		err = txn(keys, func(vals map[string][]byte) (map[string]storage.Write, error) {
			w := make(map[string]storage.Write, len(keys))
			for _, k := range keys {
				w[k] = storage.Write{Value: buf}
			}
			return w, nil
		})
		if err != nil {
			t.Fatalf("Txn over MaxTxnKeys keys: %v", err)
		}
		copy(buf, "XXX")
		if got := list(t, s, ns, "many"); !reflect.DeepEqual(got, keys) {
			t.Fatalf("List after a %d-key Txn: %d keys", len(keys), len(got))
		}
		wantValue(t, s, ns, "many099", `"v"`)

		// Write.TTL as in Set; expired keys are missing from vals.
		mustSet(t, s, ns, "persist", `1`, ttlShort)
		err = txn([]string{"persist", "short"}, func(map[string][]byte) (map[string]storage.Write, error) {
			return map[string]storage.Write{
				"persist": {Value: []byte(`2`)},                // clears the expiry
				"short":   {Value: []byte(`3`), TTL: ttlShort}, // expires
			}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(ttlWait)
		wantValue(t, s, ns, "persist", `2`)
		wantMissing(t, s, ns, "short")
		mustSet(t, s, ns, "stale", `1`, time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		err = txn([]string{"stale", "persist"}, func(vals map[string][]byte) (map[string]storage.Write, error) {
			if _, ok := vals["stale"]; ok || string(vals["persist"]) != `2` {
				t.Errorf("vals = %q; want persist only", vals)
			}
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	// 50 goroutines each add 1 twenty times through Get + CompareAndSwap retry loops, the way
	// api.store.update works: no update may be lost.
	t.Run("ConcurrentCompareAndSwap", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		const goroutines, each = 50, 20
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if err := casIncr(ctx, s, ns, "counter"); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		wantValue(t, s, ns, "counter", strconv.Itoa(goroutines*each))
	})

	// A unique index: of 20 goroutines claiming one token, exactly one wins, and the token
	// names the winner.
	t.Run("UniqueIndex", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		const tokens, claimants = 10, 20
		for tok := 0; tok < tokens; tok++ {
			key := fmt.Sprintf("token:%d", tok)
			var wins atomic.Int32
			winner := make(chan string, claimants)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for c := 0; c < claimants; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					me := fmt.Sprintf(`"@user%d:example.org"`, c)
					<-start
					set, err := s.SetIfAbsent(ctx, ns, key, []byte(me), time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if set {
						wins.Add(1)
						winner <- me
					}
				}()
			}
			close(start)
			wg.Wait()
			if n := wins.Load(); n != 1 {
				t.Fatalf("%s: %d claimants won; want exactly 1", key, n)
			}
			wantValue(t, s, ns, key, <-winner)
		}
	})

	// Goroutines move units between two keys with Txn while others Incr one of them: the
	// total stays what the increments made it, so no transaction lost or doubled a write.
	t.Run("ConcurrentTxn", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := Namespace(t, "m")
		mustSet(t, s, ns, "a", `500`, 0)
		mustSet(t, s, ns, "b", `500`, 0)
		const movers, moves, incrs = 20, 10, 50
		var moved, conflicts atomic.Int64 // net units moved from a to b
		var wg sync.WaitGroup
		for g := 0; g < movers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				from, to, sign := "a", "b", int64(1)
				if g%2 == 1 {
					from, to, sign = "b", "a", -1
				}
				amount := int64(g + 1)
				move := transfer(from, to, amount)
				slowMove := func(vals map[string][]byte) (map[string]storage.Write, error) {
					runtime.Gosched() // let others run between the read and the write, if they can
					return move(vals)
				}
				for i := 0; i < moves; {
					err := s.Txn(ctx, ns, []string{from, to}, slowMove)
					if errors.Is(err, storage.ErrConflict) {
						conflicts.Add(1) // allowed on optimistic backends; try again
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					moved.Add(sign * amount)
					i++
				}
			}()
		}
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < incrs/2; i++ {
					if _, err := s.Incr(ctx, ns, "a", 1, 0); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if n := conflicts.Load(); n > 0 {
			t.Logf("%d transactions ended in ErrConflict and were retried", n)
		}
		wantValue(t, s, ns, "a", strconv.FormatInt(500-moved.Load()+incrs, 10))
		wantValue(t, s, ns, "b", strconv.FormatInt(500+moved.Load(), 10))
	})
}

// bulkSet writes many keys fast: MaxTxnKeys per transaction, several transactions at once
// (which bolt commits together), where one Set per key would cost one disk sync per key.
func bulkSet(t *testing.T, s storage.Store, ns string, keys []string) {
	t.Helper()
	ctx := context.Background()
	var chunks [][]string
	for len(keys) > 0 {
		n := min(len(keys), storage.MaxTxnKeys)
		chunks = append(chunks, keys[:n])
		keys = keys[n:]
	}
	const workers = 8
	next := make(chan []string)
	errs := make(chan error, len(chunks))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range next {
				errs <- s.Txn(ctx, ns, chunk, func(map[string][]byte) (map[string]storage.Write, error) {
					writes := make(map[string]storage.Write, len(chunk))
					for _, k := range chunk {
						writes[k] = storage.Write{Value: []byte(`0`)}
					}
					return writes, nil
				})
			}
		}()
	}
	for _, chunk := range chunks {
		next <- chunk
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("bulk load through Txn: %v", err)
		}
	}
}

// casIncr adds 1 to the decimal integer at key (missing counts as 0) with a Get +
// CompareAndSwap loop; every failed swap means another writer succeeded meanwhile.
func casIncr(ctx context.Context, s storage.Store, ns, key string) error {
	for {
		old, found, err := s.Get(ctx, ns, key)
		if err != nil {
			return err
		}
		var n int64
		if found {
			if n, err = strconv.ParseInt(string(old), 10, 64); err != nil {
				return fmt.Errorf("%s holds %q: %w", key, old, err)
			}
		} else {
			old = nil
		}
		swapped, err := s.CompareAndSwap(ctx, ns, key, old, strconv.AppendInt(nil, n+1, 10), 0)
		if err != nil || swapped {
			return err
		}
	}
}

// transfer is a transaction moving amount from the integer at key from to the one at to
// (missing keys count as 0).
func transfer(from, to string, amount int64) storage.TxnFunc {
	return func(vals map[string][]byte) (map[string]storage.Write, error) {
		num := func(k string) (int64, error) {
			if vals[k] == nil {
				return 0, nil
			}
			return strconv.ParseInt(string(vals[k]), 10, 64)
		}
		f, err := num(from)
		if err != nil {
			return nil, err
		}
		t, err := num(to)
		if err != nil {
			return nil, err
		}
		return map[string]storage.Write{
			from: {Value: strconv.AppendInt(nil, f-amount, 10)},
			to:   {Value: strconv.AppendInt(nil, t+amount, 10)},
		}, nil
	}
}

// goroutines returns the stack of every goroutine, by goroutine ID.
func goroutines() map[string]string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		// "goroutine 42 [running]:\n..."
		id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		stacks[id] = g
	}
	return stacks
}

// goroutinesLeft waits up to wait for the goroutines started since before to end and
// returns the stacks of those still running. (Goroutines wind down asynchronously after a
// Close that signalled them; goleak does the same, but a non-test package importing it would
// count as linking it.)
func goroutinesLeft(before map[string]string, wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		var left []string
		for id, stack := range goroutines() {
			if _, old := before[id]; !old {
				left = append(left, stack)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}
