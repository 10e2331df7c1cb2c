package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// runID keeps the namespaces of concurrent test runs against one Redis apart.
var runID = fmt.Sprintf("t%x%x", time.Now().UnixNano()&0xffffffff, os.Getpid())

// testNS returns a namespace unique to this test and run.
func testNS(t testing.TB, name string) string {
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

// runSuite checks the behaviour every backend shares. open returns a store for the running
// (sub)test; calling it again within the same subtest must reach the same data (a reopened
// bolt file, a new Redis client), except for the memory backend, whose reopen test is skipped.
// Subtests run in parallel, so the TTL waits overlap.
func runSuite(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	mustSet := func(t *testing.T, s Store, ns, key, val string, ttl time.Duration) {
		t.Helper()
		if err := s.Set(ctx, ns, key, []byte(val), ttl); err != nil {
			t.Fatalf("Set(%q, %q): %v", ns, key, err)
		}
	}
	get := func(t *testing.T, s Store, ns, key string) (string, bool) {
		t.Helper()
		v, found, err := s.Get(ctx, ns, key)
		if err != nil {
			t.Fatalf("Get(%q, %q): %v", ns, key, err)
		}
		if !found && v != nil {
			t.Fatalf("Get(%q, %q): not found but value %q", ns, key, v)
		}
		return string(v), found
	}
	wantValue := func(t *testing.T, s Store, ns, key, want string) {
		t.Helper()
		got, found := get(t, s, ns, key)
		if !found || got != want {
			t.Fatalf("Get(%q) = %q, %v; want %q, true", key, got, found, want)
		}
	}
	wantMissing := func(t *testing.T, s Store, ns, key string) {
		t.Helper()
		if got, found := get(t, s, ns, key); found {
			t.Fatalf("Get(%q) = %q, true; want missing", key, got)
		}
	}
	incr := func(t *testing.T, s Store, ns, key string, by int64, ttl time.Duration) int64 {
		t.Helper()
		n, err := s.Incr(ctx, ns, key, by, ttl)
		if err != nil {
			t.Fatalf("Incr(%q, %d, %v): %v", key, by, ttl, err)
		}
		return n
	}
	list := func(t *testing.T, s Store, ns, prefix string) []string {
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
	wantList := func(t *testing.T, s Store, ns, prefix string, want ...string) {
		t.Helper()
		if want == nil {
			want = []string{}
		}
		if got := list(t, s, ns, prefix); !reflect.DeepEqual(got, want) {
			t.Fatalf("List(%q) = %q; want %q", prefix, got, want)
		}
	}

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := testNS(t, "m")
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
		a, b, ab := testNS(t, "a"), testNS(t, "b"), testNS(t, "ab")
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
		ns := testNS(t, "m")
		wantMissing(t, s, ns, "never-set")
		wantMissing(t, s, testNS(t, "never-used"), "k")
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
		if err := s.Delete(ctx, testNS(t, "never-used"), "k"); err != nil {
			t.Fatalf("deleting in an unused namespace: %v", err)
		}
	})

	t.Run("TTL", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := testNS(t, "m")
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
		ns := testNS(t, "m")
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
			if !errors.Is(err, ErrOverflow) || IsUnavailable(err) {
				t.Fatalf("Incr past max (ttl %v): %v; want ErrOverflow", ttl, err)
			}
		}
		wantValue(t, s, ns, "big", `9223372036854775807`)
		mustSet(t, s, ns, "small", `-9223372036854775808`, 0)
		if _, err := s.Incr(ctx, ns, "small", -1, 0); !errors.Is(err, ErrOverflow) {
			t.Fatalf("Incr past min: %v; want ErrOverflow", err)
		}
	})

	t.Run("IncrNotInteger", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := testNS(t, "m")
		bad := []string{`"abc"`, `"5"`, `1.5`, `5.0`, `1e3`, ` 5`, `5 `, `+5`, `05`, `-0`, `-`, ``,
			`{"n":1}`, `true`, `null`, `99999999999999999999`, `-9223372036854775809`}
		for i, v := range bad {
			key := fmt.Sprintf("bad%d", i)
			mustSet(t, s, ns, key, v, 0)
			for _, ttl := range []time.Duration{0, time.Hour} {
				n, err := s.Incr(ctx, ns, key, 1, ttl)
				if !errors.Is(err, ErrNotInteger) {
					t.Fatalf("Incr on %q (ttl %v) = %d, %v; want ErrNotInteger", v, ttl, n, err)
				}
				if !strings.Contains(err.Error(), key) {
					t.Fatalf("error %q does not name the key %q", err, key)
				}
				if IsUnavailable(err) {
					t.Fatalf("IsUnavailable(%v) = true for a usage error", err)
				}
			}
			wantValue(t, s, ns, key, v) // untouched
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := testNS(t, "m")
		for _, k := range []string{"b1", "a2", "a10", "a1", "c", "user:@alice:example.org", "user:@bob:example.org"} {
			mustSet(t, s, ns, k, `0`, 0)
		}
		wantList(t, s, ns, "", "a1", "a10", "a2", "b1", "c", "user:@alice:example.org", "user:@bob:example.org")
		wantList(t, s, ns, "a", "a1", "a10", "a2")
		wantList(t, s, ns, "a1", "a1", "a10")
		wantList(t, s, ns, "user:", "user:@alice:example.org", "user:@bob:example.org")
		wantList(t, s, ns, "zz")
		wantList(t, s, testNS(t, "unused"), "")
	})

	t.Run("ListGlobCharacters", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := testNS(t, "m")
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
		star, plain := testNS(t, "g*"), testNS(t, "gX")
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
		ns := testNS(t, "m")
		var keys []string
		for i := 0; i < MaxListKeys+50; i++ {
			keys = append(keys, fmt.Sprintf("k%06d", i))
		}
		bulkSet(t, s, ns, keys)
		got := list(t, s, ns, "")
		if len(got) != MaxListKeys {
			t.Fatalf("List returned %d keys; want %d", len(got), MaxListKeys)
		}
		if !reflect.DeepEqual(got, keys[:MaxListKeys]) {
			t.Fatalf("List did not return the first %d keys in order: %q ... %q", MaxListKeys, got[0], got[len(got)-1])
		}
		if got := list(t, s, ns, "k0001"); len(got) != 100 || got[0] != "k000100" || got[99] != "k000199" {
			t.Fatalf("List(k0001) = %d keys: %q", len(got), got)
		}
	})

	t.Run("ConcurrentIncr", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := testNS(t, "m")
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
		s := open(t)
		if _, ok := s.(*memStore); ok {
			t.Skip("the memory backend keeps nothing across reopening")
		}
		ns := testNS(t, "m")
		mustSet(t, s, ns, "doc", `{"kept":true}`, 0)
		mustSet(t, s, ns, "ttl", `1`, time.Hour)
		incr(t, s, ns, "count", 3, 0)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := open(t)
		wantValue(t, s2, ns, "doc", `{"kept":true}`)
		wantValue(t, s2, ns, "ttl", `1`)
		if n := incr(t, s2, ns, "count", 1, 0); n != 4 {
			t.Fatalf("Incr after reopen = %d; want 4", n)
		}
		wantList(t, s2, ns, "", "count", "doc", "ttl")
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := testNS(t, "m")
		check := func(what string, err error) {
			t.Helper()
			if err == nil {
				t.Fatalf("%s: no error", what)
			}
			if IsUnavailable(err) {
				t.Fatalf("%s: IsUnavailable(%v) = true", what, err)
			}
		}
		_, _, err := s.Get(ctx, ns, "")
		check("empty key", err)
		check("empty namespace", s.Set(ctx, "", "k", []byte(`1`), 0))
		check("namespace with ':'", s.Set(ctx, "a:b", "k", []byte(`1`), 0))
		check("long key", s.Set(ctx, ns, strings.Repeat("k", MaxKeyLen+1), []byte(`1`), 0))
		check("negative ttl", s.Set(ctx, ns, "k", []byte(`1`), -time.Second))
		_, err = s.Incr(ctx, ns, "k", 1, -time.Second)
		check("negative incr ttl", err)
		_, err = s.List(ctx, "", "")
		check("list empty namespace", err)
		if !errors.Is(s.Delete(ctx, "a:b", "k"), ErrInvalidKey) {
			t.Fatal("Delete with a bad namespace does not wrap ErrInvalidKey")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err = s.Get(cctx, ns, "k")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Get with a cancelled context: %v", err)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ns := testNS(t, "m")
		mustSet(t, s, ns, "k", `1`, 0)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		_, _, err := s.Get(ctx, ns, "k")
		if !errors.Is(err, ErrClosed) || !IsUnavailable(err) {
			t.Fatalf("Get after Close: %v; want ErrClosed, unavailable", err)
		}
		if err := s.Set(ctx, ns, "k", []byte(`2`), 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Set after Close: %v", err)
		}
		if _, err := s.Incr(ctx, ns, "k", 1, 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Incr after Close: %v", err)
		}
		if _, err := s.List(ctx, ns, ""); !errors.Is(err, ErrClosed) {
			t.Fatalf("List after Close: %v", err)
		}
		if err := s.Delete(ctx, ns, "k"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Delete after Close: %v", err)
		}
	})
}

// bulkSet writes many keys fast (one transaction or pipeline where the backend allows).
func bulkSet(t *testing.T, s Store, ns string, keys []string) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch st := s.(type) {
	case *boltStore:
		err = st.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(ns))
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := b.Put([]byte(k), encodeBolt([]byte(`0`), 0)); err != nil {
					return err
				}
			}
			return nil
		})
	case *redisStore:
		p := st.client.Pipeline()
		for _, k := range keys {
			p.Set(ctx, redisKey(ns, k), `0`, 0)
		}
		_, err = p.Exec(ctx)
	default:
		for _, k := range keys {
			if err = s.Set(ctx, ns, k, []byte(`0`), 0); err != nil {
				break
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
