// Package storage is the Go side of module storage: a namespaced key-value store that Lua
// modules reach through api.store (see docs/storage.md).
//
// Values are opaque bytes to this package; the Lua binding stores JSON text in them.
// Integers written by Incr are decimal text, which is valid JSON.
//
// Backends register themselves by name, as database/sql drivers do, and Open picks one. This
// package holds only the "memory" backend, so importing it links no database client; the
// others live in subpackages that a program links with a blank import:
//
//   - "bolt" (the default): import _ "github.com/luahost/luahost/engine/storage/bolt", a
//     go.etcd.io/bbolt file on disk.
//   - "redis": import _ "github.com/luahost/luahost/engine/storage/redis", a Redis server,
//     so several luahost processes can share state.
//
// All backends share one behaviour, checked by one test suite (package storagetest). A
// backend written outside luahost uses the helpers below (CheckArgs, Increment, ExpiryAt, ...)
// to reject the same input and compute the same results, and runs storagetest.Run.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Store is a namespaced key-value store shared by module generations. All methods are safe
// for concurrent use; ctx must not be nil. ns is the module name; a key in one namespace is
// invisible in others.
//
// Errors caused by the backend being unreachable (see IsUnavailable) are returned wrapped,
// never as panics; after Close every method returns an error wrapping ErrClosed.
type Store interface {
	// Get returns the value stored at key; found is false for a missing or expired key. A
	// found value is never nil (an empty value is an empty slice), so it can be passed to
	// CompareAndSwap as old.
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

	// SetIfAbsent stores value (ttl as in Set) only when key is missing or expired, and
	// reports whether it did. Of several concurrent callers for one key exactly one wins,
	// which makes a unique index ("token:X" -> owner) a single call.
	SetIfAbsent(ctx context.Context, ns, key string, value []byte, ttl time.Duration) (set bool, err error)
	// CompareAndSwap atomically replaces the value at key with new when it currently holds
	// old, and reports whether it did. old == nil means the key must be missing (or expired);
	// new == nil deletes the key. An empty non-nil slice is a present, empty value in both.
	// ttl applies to new as in Set (ttl == 0 clears an expiry). Values are compared, not
	// versions: a key rewritten with the same bytes meanwhile still matches.
	//
	// A read-modify-write loop is Get, compute, CompareAndSwap(old = the value read), and
	// again from Get when it returns false; every false means another writer succeeded.
	CompareAndSwap(ctx context.Context, ns, key string, old, new []byte, ttl time.Duration) (swapped bool, err error)
	// Txn calls fn with the current values of keys and atomically applies the writes it
	// returns, provided none of keys changed in between; see TxnFunc for what fn receives and
	// may return. keys holds 1 to MaxTxnKeys valid keys; duplicates count once.
	//
	// A backend either holds a lock on the keys while fn runs (memory, bolt: fn is called
	// once and there is never a conflict) or runs optimistically (redis: when a key changed,
	// fn is called again with the fresh values, a bounded number of times, after which Txn
	// fails with an error wrapping ErrConflict). So fn must only compute: it must be quick,
	// must not call the Store (it may run under the store's lock), and may run several times.
	// An error returned by fn aborts the transaction, writes nothing and is returned as is;
	// a panic in fn reaches Txn's caller and leaves the store usable.
	//
	// Txn is the multi-key form of CompareAndSwap. It takes a function rather than expected
	// values so that the lock-based backends need no retry loop at all, and so a caller that
	// does want compare-and-set semantics over values it read earlier (such as a Lua
	// transaction that read keys through Get) can make fn compare vals with them and return
	// an error of its own.
	Txn(ctx context.Context, ns string, keys []string, fn TxnFunc) error

	// Close releases the backend; no goroutine started by the store outlives it.
	Close() error
}

// TxnFunc computes a transaction's writes from the current values of its keys. vals holds
// every present key with a non-nil value; missing and expired keys are not in it (so
// vals[k] == nil means absent). fn owns vals and may modify it. The returned map may name
// only keys of the transaction (else Txn fails with an error wrapping ErrInvalidKey and
// writes nothing: a mistyped key fails instead of being written unchecked); keys it does not
// name are left as they are.
type TxnFunc func(vals map[string][]byte) (writes map[string]Write, err error)

// Write is what a transaction stores at one key. It carries a TTL so that a transaction can
// create expiring keys (a token and its owner's reference to it, say).
type Write struct {
	Value []byte        // the new value; nil deletes the key (an empty non-nil slice is stored)
	TTL   time.Duration // as in Set: > 0 expires the key after TTL, 0 keeps it forever
}

// Config selects and configures a backend.
type Config struct {
	Backend string // "bolt" (default, on disk), "memory", "redis", or another registered name
	Path    string // bolt: database file path (parent directories are created)
	URL     string // redis: redis://[:PASSWORD@]HOST:PORT/DB (rediss:// for TLS)
}

const (
	// MaxListKeys is the most keys List returns.
	MaxListKeys = 10000
	// MaxKeyLen is the longest key (and namespace) in bytes.
	MaxKeyLen = 4096
	// MaxTxnKeys is the most keys one Txn may cover: a transaction holds a lock (or ships
	// every value twice) for all of them.
	MaxTxnKeys = 100
	// DefaultFile is the bolt file name inside luahost's data_dir.
	DefaultFile = "storage.db"
	// defaultBackend is used when Config.Backend is empty.
	defaultBackend = "bolt"
)

var (
	// ErrNotInteger is returned (wrapped with the key) by Incr on a key holding a value that
	// is not a decimal integer.
	ErrNotInteger = errors.New("value is not an integer")
	// ErrOverflow is returned (wrapped with the key) by Incr when the result would not fit
	// in an int64.
	ErrOverflow = errors.New("increment would overflow int64")
	// ErrInvalidKey is returned for an empty or too long key or namespace, a namespace
	// containing ':', a Txn with no or too many keys, or a Txn write to a key outside the
	// transaction.
	ErrInvalidKey = errors.New("invalid key")
	// ErrClosed is returned by every method of a closed Store. IsUnavailable reports true
	// for it.
	ErrClosed = errors.New("storage is closed")
	// ErrConflict is returned (wrapped with the keys) by Txn on an optimistic backend when
	// other writers kept changing the keys through every attempt. It is not an outage:
	// retrying later may succeed.
	ErrConflict = errors.New("transaction conflict: the keys kept changing")
)

// DefaultPath is the bolt database path for a luahost data directory.
func DefaultPath(dataDir string) string { return filepath.Join(dataDir, DefaultFile) }

var (
	registryMu sync.RWMutex
	registry   = make(map[string]func(Config) (Store, error))
)

// linkable names the backends luahost ships in subpackages, so that Open can tell a program
// that did not link one what to import.
var linkable = map[string]string{
	"bolt":  "github.com/luahost/luahost/engine/storage/bolt",
	"redis": "github.com/luahost/luahost/engine/storage/redis",
}

func init() {
	Register("memory", func(Config) (Store, error) { return newMemory(time.Now), nil })
}

// Register makes a backend available to Open under name, which must be lower case without
// spaces. A backend package calls it from its init function, so that a blank import of the
// package is all a program needs. Register panics when name is taken or invalid or open is
// nil: those are programming mistakes found at start-up.
func Register(name string, open func(Config) (Store, error)) {
	if name == "" || name != strings.ToLower(strings.TrimSpace(name)) || strings.ContainsAny(name, " \t\n") {
		panic(fmt.Sprintf("luahost: storage.Register: invalid backend name %q (want lower case, no spaces)", name))
	}
	if open == nil {
		panic(fmt.Sprintf("luahost: storage.Register: nil open function for backend %q", name))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("luahost: storage.Register: backend %q registered twice", name))
	}
	registry[name] = open
}

// Backends returns the names of the registered backends, sorted: those this program can Open.
func Backends() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Open opens the backend named by cfg.Backend (case-insensitive; empty means "bolt"). Errors
// name the backend and the path or URL. A backend luahost ships but this program did not
// link fails with an error saying which package to import.
//
// The redis backend pings the server (with a 3 s timeout) and fails when it does not answer,
// so a misconfigured URL is found at startup; IsUnavailable(err) then tells an unreachable
// server (which a caller may retry) from a bad configuration. Once open, a Redis outage only
// makes the calls made during it fail; the client reconnects by itself.
func Open(cfg Config) (Store, error) {
	name := strings.ToLower(strings.TrimSpace(cfg.Backend))
	if name == "" {
		name = defaultBackend
	}
	registryMu.RLock()
	open := registry[name]
	registryMu.RUnlock()
	if open != nil {
		return open(cfg)
	}
	if pkg, ok := linkable[name]; ok {
		return nil, fmt.Errorf("storage backend %q is not linked into this program: import _ %q", name, pkg)
	}
	return nil, fmt.Errorf("storage: unknown backend %q (this program has: %s)", cfg.Backend, strings.Join(Backends(), ", "))
}

// Unavailable marks err so that IsUnavailable reports true for it; the message and the
// errors.Is/As chain are unchanged. A backend wraps with it the failures of its client that
// mean "the server cannot serve now" (a pool timeout, a server still loading its data) which
// the generic checks of IsUnavailable do not recognise. Unavailable(nil) is nil.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &unavailableError{err}
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// IsUnavailable reports whether err comes from the backend being unreachable or broken
// (connection refused or reset, timeout, closed store or pool, disk I/O failure, or an error
// a backend marked with Unavailable) rather than from a usage error such as ErrNotInteger.
// The caller can use it to log outages once per burst instead of once per call.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var marked *unavailableError
	if errors.As(err, &marked) {
		return true
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
	return errors.As(err, &dnserr)
}
