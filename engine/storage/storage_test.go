package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestParseInt(t *testing.T) {
	good := map[string]int64{"0": 0, "7": 7, "-7": -7, "10": 10, "9223372036854775807": 1<<63 - 1,
		"-9223372036854775808": -1 << 63}
	for s, want := range good {
		if got, ok := parseInt([]byte(s)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "-", "+1", "01", "-0", "-01", "1.0", " 1", "1 ", "1e2", "0x10",
		"9223372036854775808", "-9223372036854775809", "18446744073709551616", "99999999999999999999"} {
		if got, ok := parseInt([]byte(s)); ok {
			t.Errorf("parseInt(%q) = %d, true; want false", s, got)
		}
	}
}

func TestGlobEscape(t *testing.T) {
	if got := globEscape(`a*b?c[d]e\f`); got != `a\*b\?c\[d\]e\\f` {
		t.Fatalf("globEscape = %q", got)
	}
}

func TestIsUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	yes := []error{
		refused,
		fmt.Errorf("storage: redis get %q: %w", "k", refused),
		fmt.Errorf("wrapped: %w", syscall.ECONNRESET),
		context.DeadlineExceeded,
		os.ErrDeadlineExceeded,
		redis.ErrClosed,
		redis.ErrPoolTimeout,
		fmt.Errorf("x: %w", ErrClosed),
		fmt.Errorf("bolt: %w", syscall.ENOSPC),
	}
	no := []error{
		nil,
		ErrNotInteger,
		fmt.Errorf("storage: incr %q: %w", "k", ErrNotInteger),
		ErrOverflow,
		ErrInvalidKey,
		context.Canceled,
		errors.New("storage: negative ttl"),
		redis.Nil,
	}
	for _, err := range yes {
		if !IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false", err)
		}
	}
	for _, err := range no {
		if IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = true", err)
		}
	}
}

// No goroutine a store starts may outlive Close. Not parallel: goleak sees every goroutine.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	cfgs := []Config{
		{Backend: "memory"},
		{Backend: "bolt", Path: filepath.Join(t.TempDir(), "storage.db")},
	}
	if u := os.Getenv("LUAHOST_TEST_REDIS_URL"); u != "" {
		cleanupRedis(t, u)
		cfgs = append(cfgs, Config{Backend: "redis", URL: u})
	}
	for _, cfg := range cfgs {
		s, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ns := testNS(t, "m")
		if err := s.Set(ctx, ns, "k", []byte(`1`), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Incr(ctx, ns, "n", 1, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := goleak.Find(ignore); err != nil {
			t.Fatalf("%s: %v", cfg.Backend, err)
		}
	}
}
