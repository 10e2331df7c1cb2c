// Package storage is the Go side of module storage: a namespaced key-value store that Lua
// modules reach through api.store.get/set/delete/incr/list (see docs/storage.md).
//
// Values are opaque bytes to this package; the Lua binding stores JSON text in them.
// Integers written by Incr are decimal text, which is valid JSON.
//
// Three backends share one behaviour (checked by one test suite):
//
//   - "bolt" (default): a go.etcd.io/bbolt file on disk, one bucket per namespace.
//   - "memory": a map guarded by a mutex; nothing survives a restart.
//   - "redis": a Redis server (github.com/redis/go-redis/v9), keys "luahost:<ns>:<key>",
//     so several luahost processes can share state.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Store is a namespaced key-value store shared by module generations. All methods are safe
// for concurrent use. ns is the module name; a key in one namespace is invisible in others.
//
// Errors caused by the backend being unreachable (see IsUnavailable) are returned wrapped,
// never as panics; after Close every method returns an error wrapping ErrClosed.
type Store interface {
	// Get returns the value stored at key; found is false for a missing or expired key.
	Get(ctx context.Context, ns, key string) (value []byte, found bool, err error)
	// Set stores value; ttl > 0 expires the key after ttl, ttl == 0 keeps it forever (and
	// clears an earlier expiry). A negative ttl is an error.
	Set(ctx context.Context, ns, key string, value []byte, ttl time.Duration) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, ns, key string) error
	// Incr atomically adds by to the integer stored at key (a missing or expired key counts as
	// 0) and returns the new value. ttl > 0 sets the expiry only when this call creates the key
	// (fixed-window counters); an existing key keeps its expiry. A key holding a non-integer
	// value is an error wrapping ErrNotInteger; a result outside int64 wraps ErrOverflow.
	Incr(ctx context.Context, ns, key string, by int64, ttl time.Duration) (int64, error)
	// List returns the keys of ns starting with prefix, sorted bytewise, without expired ones.
	// At most MaxListKeys keys are returned: when more match, the first MaxListKeys in sorted
	// order (use a longer prefix to reach the rest).
	List(ctx context.Context, ns, prefix string) ([]string, error)
	// Close releases the backend; no goroutine started by the store outlives it.
	Close() error
}

// Config selects and configures a backend.
type Config struct {
	Backend string // "bolt" (default, on disk), "memory", "redis"
	Path    string // bolt: database file path (parent directories are created)
	URL     string // redis: redis://[:PASSWORD@]HOST:PORT/DB (rediss:// for TLS)
}

const (
	// MaxListKeys is the most keys List returns.
	MaxListKeys = 10000
	// MaxKeyLen is the longest key (and namespace) in bytes.
	MaxKeyLen = 4096
	// DefaultFile is the bolt file name inside luahost's data_dir.
	DefaultFile = "storage.db"
)

var (
	// ErrNotInteger is returned (wrapped with the key) by Incr on a key holding a value that
	// is not a decimal integer.
	ErrNotInteger = errors.New("value is not an integer")
	// ErrOverflow is returned (wrapped with the key) by Incr when the result would not fit
	// in an int64.
	ErrOverflow = errors.New("increment would overflow int64")
	// ErrInvalidKey is returned for an empty or too long key or namespace, or a namespace
	// containing ':'.
	ErrInvalidKey = errors.New("invalid key")
	// ErrClosed is returned by every method of a closed Store. IsUnavailable reports true
	// for it.
	ErrClosed = errors.New("storage is closed")
)

// DefaultPath is the bolt database path for a luahost data directory.
func DefaultPath(dataDir string) string { return filepath.Join(dataDir, DefaultFile) }

// Open opens the backend named by cfg.Backend. Errors name the backend and the path or URL.
//
// The redis backend pings the server (with a 3 s timeout) and fails when it does not answer,
// so a misconfigured URL is found at startup; IsUnavailable(err) then tells an unreachable
// server (which a caller may retry) from a bad configuration. Once open, a Redis outage only
// makes the calls made during it fail; the client reconnects by itself.
func Open(cfg Config) (Store, error) {
	switch strings.ToLower(strings.TrimSpace(cfg.Backend)) {
	case "", "bolt":
		return openBolt(cfg.Path)
	case "memory":
		return newMemory(), nil
	case "redis":
		return openRedis(cfg.URL)
	default:
		return nil, fmt.Errorf("storage: unknown backend %q (want bolt, memory or redis)", cfg.Backend)
	}
}

// IsUnavailable reports whether err comes from the backend being unreachable or broken
// (connection refused or reset, timeout, closed store or pool, disk I/O failure) rather than
// from a usage error such as ErrNotInteger. The caller can use it to log outages once per
// burst instead of once per call.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	for _, errno := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN,
		syscall.EIO, syscall.ENOSPC, syscall.EROFS,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return true
	}
	var operr *net.OpError
	if errors.As(err, &operr) {
		return true
	}
	var dnserr *net.DNSError
	if errors.As(err, &dnserr) {
		return true
	}
	return redisUnavailable(err)
}

// validate checks a namespace and a key.
func validate(ns, key string) error {
	if err := validateNS(ns); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("storage: %w: empty key", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("storage: %w: key longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	return nil
}

func validateNS(ns string) error {
	switch {
	case ns == "":
		return fmt.Errorf("storage: %w: empty namespace", ErrInvalidKey)
	case len(ns) > MaxKeyLen:
		return fmt.Errorf("storage: %w: namespace longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	case strings.ContainsRune(ns, ':'):
		// ':' separates namespace and key in Redis key names.
		return fmt.Errorf("storage: %w: namespace %q contains ':'", ErrInvalidKey, ns)
	}
	return nil
}

func validateTTL(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("storage: negative ttl %v", ttl)
	}
	return nil
}

// parseInt parses the integers Incr accepts: '-'? ('0' | [1-9][0-9]*) within int64, the same
// strict syntax as Redis's INCRBY (no '+', spaces, leading zeros or "-0"), so every backend
// accepts the same values.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	d := b
	if neg {
		d = b[1:]
	}
	if len(d) == 0 || (d[0] == '0' && (len(d) > 1 || neg)) {
		return 0, false
	}
	var u uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (1<<63)/10 {
			return 0, false // u*10+9 still fits in uint64; the range check below decides
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true // -(1<<63) wraps to itself, which is right
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// addInt adds with overflow detection.
func addInt(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// incrValue computes an increment on a stored value (nil when missing).
func incrValue(key string, old []byte, exists bool, by int64) (int64, error) {
	var cur int64
	if exists {
		v, ok := parseInt(old)
		if !ok {
			return 0, fmt.Errorf("storage: incr %q: %w", key, ErrNotInteger)
		}
		cur = v
	}
	n, ok := addInt(cur, by)
	if !ok {
		return 0, fmt.Errorf("storage: incr %q: %w", key, ErrOverflow)
	}
	return n, nil
}

// check validates a call's arguments and context before a backend acts:
// every backend starts each method with it, so all reject the same input.
func check(ctx context.Context, ns, key string, ttl time.Duration) error {
	if err := validate(ns, key); err != nil {
		return err
	}
	if err := validateTTL(ttl); err != nil {
		return err
	}
	return ctxErr(ctx)
}

func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// truncateSorted keeps the first MaxListKeys of sorted keys.
func truncateSorted(keys []string) []string {
	if len(keys) > MaxListKeys {
		keys = keys[:MaxListKeys:MaxListKeys]
	}
	return keys
}

// expiryAt turns a ttl into an absolute expiry in Unix nanoseconds (0 = never).
func expiryAt(now time.Time, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return now.Add(ttl).UnixNano()
}

func expired(exp int64, now int64) bool { return exp != 0 && exp <= now }
