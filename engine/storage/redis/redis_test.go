package redis

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luahost/luahost/engine/internal/lease"
	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/engine/storage/storagetest"
)

// redisURL returns the test server's URL, skipping the test when there is none, except in
// CI, which must run the Redis tests.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("LUAHOST_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("LUAHOST_TEST_REDIS_URL not set, and CI must run the Redis tests: run .ci/redis.sh start")
		}
		t.Skip("LUAHOST_TEST_REDIS_URL not set; run .ci/redis.sh start")
	}
	return u
}

// openTestRedis opens a store and deletes the test's keys when the test ends.
func openTestRedis(t *testing.T, url string) storage.Store {
	t.Helper()
	s, err := storage.Open(storage.Config{Backend: "redis", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func cleanupRedis(t testing.TB, url string) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := goredis.NewClient(opts)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, redisKeyPrefix+storagetest.NamespacePrefix()+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			c.Del(ctx, keys[:n]...)
			keys = keys[n:]
		}
	})
}

func TestRedis(t *testing.T) {
	url := redisURL(t)
	cleanupRedis(t, url)
	storagetest.Run(t, func(t *testing.T) storage.Store { return openTestRedis(t, url) })
}

// Two stores with their own clients stand for two luahost processes sharing the server: no
// update made through Incr, a CompareAndSwap loop or a Txn is lost.
func TestRedisTwoProcesses(t *testing.T) {
	url := redisURL(t)
	cleanupRedis(t, url)
	a, b := openTestRedis(t, url), openTestRedis(t, url)
	ctx := context.Background()
	ns := storagetest.Namespace(t, "m")
	add := func(s storage.Store, key string) storage.TxnFunc {
		return func(vals map[string][]byte) (map[string]storage.Write, error) {
			n := 0
			if v := vals[key]; v != nil {
				var err error
				if n, err = strconv.Atoi(string(v)); err != nil {
					return nil, err
				}
			}
			return map[string]storage.Write{key: {Value: []byte(strconv.Itoa(n + 1))}}, nil
		}
	}
	for _, c := range []struct {
		name string
		op   func(s storage.Store, key string) error
	}{
		{"incr", func(s storage.Store, key string) error { _, err := s.Incr(ctx, ns, key, 1, 0); return err }},
		{"incr-ttl", func(s storage.Store, key string) error { _, err := s.Incr(ctx, ns, key, 1, time.Hour); return err }},
		{"cas", func(s storage.Store, key string) error {
			for {
				old, _, err := s.Get(ctx, ns, key)
				if err != nil {
					return err
				}
				n := 0
				if old != nil {
					if n, err = strconv.Atoi(string(old)); err != nil {
						return err
					}
				}
				if ok, err := s.CompareAndSwap(ctx, ns, key, old, []byte(strconv.Itoa(n+1)), 0); ok || err != nil {
					return err
				}
			}
		}},
		{"txn", func(s storage.Store, key string) error {
			for {
				err := s.Txn(ctx, ns, []string{key}, add(s, key))
				if !errors.Is(err, storage.ErrConflict) {
					return err
				}
			}
		}},
	} {
		key := "shared-" + c.name
		var wg sync.WaitGroup
		for g := 0; g < 20; g++ {
			s := a
			if g%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					if err := c.op(s, key); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, s := range []storage.Store{a, b} {
			v, _, err := s.Get(ctx, ns, key)
			if err != nil || string(v) != "200" {
				t.Fatalf("%s = %q, %v; want 200", key, v, err)
			}
		}
	}
}

// A transaction whose keys another client changes during every attempt gives up after
// redisTxnAttempts attempts with ErrConflict, having written nothing.
func TestRedisTxnConflict(t *testing.T) {
	url := redisURL(t)
	cleanupRedis(t, url)
	s, other := openTestRedis(t, url), openTestRedis(t, url)
	ctx := context.Background()
	ns := storagetest.Namespace(t, "m")
	calls := 0
	err := s.Txn(ctx, ns, []string{"a", "b"}, func(vals map[string][]byte) (map[string]storage.Write, error) {
		calls++
		if err := other.Set(ctx, ns, "b", []byte(strconv.Itoa(calls)), 0); err != nil {
			return nil, err
		}
		return map[string]storage.Write{"a": {Value: []byte(`"txn"`)}}, nil
	})
	if !errors.Is(err, storage.ErrConflict) || storage.IsUnavailable(err) || calls != redisTxnAttempts {
		t.Fatalf("Txn = %v after %d calls; want ErrConflict after %d", err, calls, redisTxnAttempts)
	}
	if !strings.Contains(err.Error(), `"a b"`) {
		t.Fatalf("error %q does not name the keys", err)
	}
	if _, found, _ := s.Get(ctx, ns, "a"); found {
		t.Fatal("a conflicting transaction wrote")
	}

	// A value rewritten with the same bytes is no conflict: values are compared.
	calls = 0
	err = s.Txn(ctx, ns, []string{"a", "b"}, func(vals map[string][]byte) (map[string]storage.Write, error) {
		calls++
		if err := other.Set(ctx, ns, "b", vals["b"], time.Hour); err != nil {
			return nil, err
		}
		return map[string]storage.Write{"a": {Value: []byte(`"txn"`)}}, nil
	})
	if err != nil || calls != 1 {
		t.Fatalf("Txn = %v after %d calls; want success at once", err, calls)
	}

	// A cancelled context ends the attempts.
	cctx, cancel := context.WithCancel(ctx)
	err = s.Txn(cctx, ns, []string{"b"}, func(vals map[string][]byte) (map[string]storage.Write, error) {
		if err := other.Set(ctx, ns, "b", []byte(`"moved"`), 0); err != nil {
			return nil, err
		}
		cancel()
		return map[string]storage.Write{"b": {Value: []byte(`"txn"`)}}, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Txn with a context cancelled during a conflict = %v", err)
	}
}

// The key layout is part of the contract (operators look at it, and instances share it).
func TestRedisKeyLayoutAndTTL(t *testing.T) {
	url := redisURL(t)
	cleanupRedis(t, url)
	s := openTestRedis(t, url)
	raw := s.(*redisStore).client
	ctx := context.Background()
	ns := storagetest.Namespace(t, "m")
	if err := s.Set(ctx, ns, "k:1", []byte(`{"a":1}`), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := raw.Get(ctx, "luahost:"+ns+":k:1").Result(); err != nil || v != `{"a":1}` {
		t.Fatalf("raw GET = %q, %v", v, err)
	}
	if err := s.Set(ctx, ns, "ttl", []byte(`1`), 1500*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, ns, "ttl2", []byte(`1`), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if d, err := raw.PTTL(ctx, "luahost:"+ns+":ttl2").Result(); err != nil || d <= 89*time.Second || d > 90*time.Second {
		t.Fatalf("PTTL after Set = %v, %v", d, err)
	}
	if _, err := s.Incr(ctx, ns, "c", 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if d, err := raw.PTTL(ctx, "luahost:"+ns+":c").Result(); err != nil || d <= 29*time.Second || d > 30*time.Second {
		t.Fatalf("PTTL after Incr = %v, %v", d, err)
	}
	// The atomic operations write the same layout, with the same expiries.
	if _, err := s.SetIfAbsent(ctx, ns, "token:x", []byte(`"@a:b"`), 40*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompareAndSwap(ctx, ns, "cas", nil, []byte(`2`), 50*time.Second); err != nil {
		t.Fatal(err)
	}
	err := s.Txn(ctx, ns, []string{"t1", "t2"}, func(map[string][]byte) (map[string]storage.Write, error) {
		return map[string]storage.Write{"t1": {Value: []byte(`3`), TTL: 60 * time.Second}, "t2": {Value: []byte(`4`)}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key, value string
		ttl        time.Duration // -1: none
	}{{"token:x", `"@a:b"`, 40 * time.Second}, {"cas", `2`, 50 * time.Second}, {"t1", `3`, 60 * time.Second}, {"t2", `4`, -1}} {
		rk := "luahost:" + ns + ":" + c.key
		v, err := raw.Get(ctx, rk).Result()
		d, err2 := raw.PTTL(ctx, rk).Result()
		if err != nil || err2 != nil || v != c.value {
			t.Fatalf("raw GET %s = %q, %v, %v", rk, v, err, err2)
		}
		if c.ttl < 0 && d != -1 || c.ttl > 0 && (d <= c.ttl-time.Second || d > c.ttl) {
			t.Fatalf("PTTL %s = %v; want %v", rk, d, c.ttl)
		}
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// These need no Redis server.
func TestRedisOpenErrors(t *testing.T) {
	url := "redis://" + closedPort(t) + "/0"
	start := time.Now()
	_, err := storage.Open(storage.Config{Backend: "redis", URL: url})
	if err == nil || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Open on a closed port: %v", err)
	}
	if !storage.IsUnavailable(err) {
		t.Fatalf("storage.IsUnavailable(%v) = false", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open on a closed port took %v", d)
	}

	_, err = storage.Open(storage.Config{Backend: "redis", URL: "redis://:s3cret@" + closedPort(t) + "/0"})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx") {
		t.Fatalf("password not redacted: %v", err)
	}
	for _, bad := range []string{"", "http://localhost/", "redis://localhost:6379/notadb"} {
		_, err := storage.Open(storage.Config{Backend: "redis", URL: bad})
		if err == nil || !strings.Contains(err.Error(), "redis") || storage.IsUnavailable(err) {
			t.Fatalf("Open(%q): %v", bad, err)
		}
	}
}

func TestRedisOutageClassification(t *testing.T) {
	ctx := context.Background()
	ns := "mod"

	// Connection refused.
	s := newRedisStore(&goredis.Options{Addr: closedPort(t), MaxRetries: -1}, "test")
	defer s.Close()
	_, _, err := s.Get(ctx, ns, "k")
	if err == nil || !storage.IsUnavailable(err) || !strings.HasPrefix(err.Error(), `storage: redis get "k": `) {
		t.Fatalf("Get on a closed port: %v (unavailable %v)", err, storage.IsUnavailable(err))
	}
	if _, err := s.Incr(ctx, ns, "k", 1, time.Minute); !storage.IsUnavailable(err) || errors.Is(err, storage.ErrNotInteger) {
		t.Fatalf("Incr on a closed port: %v", err)
	}

	// A server that accepts connections and never answers: a timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var accepted []net.Conn
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	defer func() {
		l.Close()
		conns.Wait()
		for _, c := range accepted {
			c.Close()
		}
	}()
	hung := newRedisStore(&goredis.Options{Addr: l.Addr().String(), MaxRetries: -1,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond}, "test")
	defer hung.Close()
	if err := hung.Set(ctx, ns, "k", []byte(`1`), 0); !storage.IsUnavailable(err) {
		t.Fatalf("Set on a silent server: %v (unavailable %v)", err, storage.IsUnavailable(err))
	}
}

func TestRedisClientClosed(t *testing.T) {
	url := redisURL(t)
	cleanupRedis(t, url)
	s := openTestRedis(t, url)
	ctx := context.Background()
	ns := storagetest.Namespace(t, "m")
	if err := s.Set(ctx, ns, "k", []byte(`"v"`), 0); err != nil {
		t.Fatal(err)
	}
	s.(*redisStore).client.Close()
	_, _, err := s.Get(ctx, ns, "k")
	if !storage.IsUnavailable(err) || !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Get with a closed client: %v", err)
	}
}

func TestGlobEscape(t *testing.T) {
	if got := globEscape(`a*b?c[d]e\f`); got != `a\*b\?c\[d\]e\\f` {
		t.Fatalf("globEscape = %q", got)
	}
}

// go-redis errors that mean "cannot serve now" are outages for storage.IsUnavailable once
// the backend wrapped them; misses and usage errors are not.
func TestRedisErrorClassification(t *testing.T) {
	s := &redisStore{}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{goredis.ErrClosed, true},
		{goredis.ErrPoolTimeout, true},
		{goredis.ErrPoolExhausted, true},
		{goredis.Nil, false},
		{errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
	} {
		err := s.wrap("get", "k", c.err)
		if got := storage.IsUnavailable(err); got != c.want || !errors.Is(err, c.err) {
			t.Errorf("IsUnavailable(wrap(%v)) = %v; want %v", c.err, got, c.want)
		}
		if !strings.HasPrefix(err.Error(), `storage: redis get "k": `) {
			t.Errorf("wrap(%v) = %q", c.err, err)
		}
	}
}

// go test -run '^$' -bench . ./engine/storage/redis/  (with LUAHOST_TEST_REDIS_URL)
func BenchmarkStore(b *testing.B) {
	url := os.Getenv("LUAHOST_TEST_REDIS_URL")
	if url == "" {
		b.Skip("LUAHOST_TEST_REDIS_URL not set; run .ci/redis.sh start")
	}
	cleanupRedis(b, url)
	storagetest.Benchmark(b, func(b *testing.B) storage.Store {
		s, err := storage.Open(storage.Config{Backend: "redis", URL: url})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRedisLeaser(t *testing.T) {
	url := redisURL(t)
	storagetest.RunLeaser(t, func(t *testing.T) storage.Store { return openTestRedis(t, url) })
}

// The fence a background run checks is a local timestamp, not a round trip: Holding against
// the Lease call a per-run check in Redis would cost, in the same run.
//
//	go test -run '^$' -bench LeaseFence ./engine/storage/redis/  (with LUAHOST_TEST_REDIS_URL)
func BenchmarkLeaseFence(b *testing.B) {
	url := os.Getenv("LUAHOST_TEST_REDIS_URL")
	if url == "" {
		b.Skip("LUAHOST_TEST_REDIS_URL not set; run .ci/redis.sh start")
	}
	s, err := storage.Open(storage.Config{Backend: "redis", URL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := s.(storage.Leaser)
	name := storagetest.Namespace(b, "fence")
	el := lease.New(l, lease.Options{Name: name, Instance: "bench", TTL: time.Minute,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	el.Step(ctx)
	defer el.Resign(ctx)
	if _, ok := el.Holding(); !ok {
		b.Fatal("the elector does not hold the lease")
	}
	b.Run("Holding", func(b *testing.B) {
		for b.Loop() {
			el.Holding()
		}
	})
	b.Run("Lease", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := l.Lease(ctx, name, el.ID(), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}
