package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
func openTestRedis(t *testing.T, url string) Store {
	t.Helper()
	s, err := Open(Config{Backend: "redis", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func cleanupRedis(t *testing.T, url string) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := redis.NewClient(opts)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, redisKeyPrefix+runID+"*", 1000).Iterator()
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
	runSuite(t, func(t *testing.T) Store { return openTestRedis(t, url) })
}

// Two stores with their own clients stand for two luahost processes sharing the server.
func TestRedisTwoProcesses(t *testing.T) {
	url := redisURL(t)
	cleanupRedis(t, url)
	a, b := openTestRedis(t, url), openTestRedis(t, url)
	ctx := context.Background()
	ns := testNS(t, "m")
	for _, ttl := range []time.Duration{0, time.Hour} {
		key := fmt.Sprintf("shared-%v", ttl)
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
					if _, err := s.Incr(ctx, ns, key, 1, ttl); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, s := range []Store{a, b} {
			v, _, err := s.Get(ctx, ns, key)
			if err != nil || string(v) != "200" {
				t.Fatalf("%s = %q, %v; want 200", key, v, err)
			}
		}
	}
}

// The key layout is part of the contract (operators look at it, and instances share it).
func TestRedisKeyLayoutAndTTL(t *testing.T) {
	url := redisURL(t)
	cleanupRedis(t, url)
	s := openTestRedis(t, url)
	raw := s.(*redisStore).client
	ctx := context.Background()
	ns := testNS(t, "m")
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
	_, err := Open(Config{Backend: "redis", URL: url})
	if err == nil || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Open on a closed port: %v", err)
	}
	if !IsUnavailable(err) {
		t.Fatalf("IsUnavailable(%v) = false", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open on a closed port took %v", d)
	}

	_, err = Open(Config{Backend: "redis", URL: "redis://:s3cret@" + closedPort(t) + "/0"})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx") {
		t.Fatalf("password not redacted: %v", err)
	}
	for _, bad := range []string{"", "http://localhost/", "redis://localhost:6379/notadb"} {
		_, err := Open(Config{Backend: "redis", URL: bad})
		if err == nil || !strings.Contains(err.Error(), "redis") || IsUnavailable(err) {
			t.Fatalf("Open(%q): %v", bad, err)
		}
	}
}

func TestRedisOutageClassification(t *testing.T) {
	ctx := context.Background()
	ns := "mod"

	// Connection refused.
	s := newRedisStore(&redis.Options{Addr: closedPort(t), MaxRetries: -1}, "test")
	defer s.Close()
	_, _, err := s.Get(ctx, ns, "k")
	if err == nil || !IsUnavailable(err) || !strings.HasPrefix(err.Error(), `storage: redis get "k": `) {
		t.Fatalf("Get on a closed port: %v (unavailable %v)", err, IsUnavailable(err))
	}
	if _, err := s.Incr(ctx, ns, "k", 1, time.Minute); !IsUnavailable(err) || errors.Is(err, ErrNotInteger) {
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
	hung := newRedisStore(&redis.Options{Addr: l.Addr().String(), MaxRetries: -1,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond}, "test")
	defer hung.Close()
	if err := hung.Set(ctx, ns, "k", []byte(`1`), 0); !IsUnavailable(err) {
		t.Fatalf("Set on a silent server: %v (unavailable %v)", err, IsUnavailable(err))
	}
}

func TestRedisClientClosed(t *testing.T) {
	url := redisURL(t)
	cleanupRedis(t, url)
	s := openTestRedis(t, url)
	ctx := context.Background()
	ns := testNS(t, "m")
	if err := s.Set(ctx, ns, "k", []byte(`"v"`), 0); err != nil {
		t.Fatal(err)
	}
	s.(*redisStore).client.Close()
	_, _, err := s.Get(ctx, ns, "k")
	if !IsUnavailable(err) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Get with a closed client: %v", err)
	}
}
