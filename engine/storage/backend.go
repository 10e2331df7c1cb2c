package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The helpers in this file are for backend authors (the bolt and redis subpackages use
// them, and so can an embedder's own backend): with them every backend rejects the same
// input and computes the same results, which storagetest.Run then checks.

// CheckArgs validates the arguments of a single-key Store method before the backend acts:
// a valid namespace and key (else an error wrapping ErrInvalidKey), a ttl that is not
// negative (pass 0 for methods without one), and a live ctx (else ctx.Err()).
func CheckArgs(ctx context.Context, ns, key string, ttl time.Duration) error {
	if err := checkKey(ns, key); err != nil {
		return err
	}
	if err := checkTTL(ttl); err != nil {
		return err
	}
	return ctxErr(ctx)
}

// CheckNamespace validates the arguments of List: a valid namespace (else an error wrapping
// ErrInvalidKey) and a live ctx.
func CheckNamespace(ctx context.Context, ns string) error {
	if err := checkNS(ns); err != nil {
		return err
	}
	return ctxErr(ctx)
}

// CheckKeys validates the arguments of Txn (the namespace, 1 to MaxTxnKeys valid keys, a
// live ctx) and returns the keys sorted and without duplicates, in a new slice. Backends
// that lock per key lock them in this order, so two transactions cannot deadlock.
func CheckKeys(ctx context.Context, ns string, keys []string) ([]string, error) {
	if err := checkNS(ns); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("storage: %w: a transaction needs at least one key", ErrInvalidKey)
	}
	uniq := append([]string(nil), keys...)
	sort.Strings(uniq)
	n := 0
	for i, k := range uniq {
		if i > 0 && k == uniq[n-1] {
			continue
		}
		if err := checkKey(ns, k); err != nil {
			return nil, err
		}
		uniq[n] = k
		n++
	}
	uniq = uniq[:n:n]
	if n > MaxTxnKeys {
		return nil, fmt.Errorf("storage: %w: a transaction covers at most %d keys, not %d", ErrInvalidKey, MaxTxnKeys, n)
	}
	return uniq, ctxErr(ctx)
}

// Call runs fn on vals and checks the writes it returns against keys (as CheckKeys returned
// them): a write to a key outside keys is an error wrapping ErrInvalidKey, a negative TTL is
// an error too. Backends call it instead of fn itself, so all reject the same writes. An
// error from fn is returned as is; a panic in fn is not recovered.
func (fn TxnFunc) Call(keys []string, vals map[string][]byte) (map[string]Write, error) {
	writes, err := fn(vals)
	if err != nil {
		return nil, err
	}
	for k, w := range writes {
		if i := sort.SearchStrings(keys, k); i == len(keys) || keys[i] != k {
			return nil, fmt.Errorf("storage: %w: transaction write to %q, which is not one of its keys", ErrInvalidKey, k)
		}
		if err := checkTTL(w.TTL); err != nil {
			return nil, fmt.Errorf("storage: transaction write to %q: %w", k, err)
		}
	}
	return writes, nil
}

// Increment computes what Incr stores: the integer in old (found false: a missing or expired
// key, which counts as 0) plus by. old must hold a decimal integer in the syntax of Redis's
// INCRBY ('-'? ('0' | [1-9][0-9]*) within int64: no '+', spaces, leading zeros or "-0"),
// else the error wraps ErrNotInteger; a sum outside int64 wraps ErrOverflow. Both errors
// name key. Store the result as strconv.AppendInt(nil, n, 10).
func Increment(key string, old []byte, found bool, by int64) (int64, error) {
	var cur int64
	if found {
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

// ExpiryAt turns a ttl into the absolute expiry of a key written at now, in Unix nanoseconds;
// 0 (for ttl 0) means never. Backends that store expiries themselves use it with Expired.
func ExpiryAt(now time.Time, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return now.Add(ttl).UnixNano()
}

// Expired reports whether a key with expiry exp (from ExpiryAt) is gone at now (Unix
// nanoseconds): from the expiry instant on, a key reads as missing.
func Expired(exp, now int64) bool { return exp != 0 && exp <= now }

// SortedKeys turns the keys a backend's List found into its result: sorted bytewise, the
// first MaxListKeys only, and never nil. It sorts keys in place.
func SortedKeys(keys []string) []string {
	if keys == nil {
		return []string{}
	}
	sort.Strings(keys)
	if len(keys) > MaxListKeys {
		keys = keys[:MaxListKeys:MaxListKeys]
	}
	return keys
}

func checkKey(ns, key string) error {
	if err := checkNS(ns); err != nil {
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

func checkNS(ns string) error {
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

func checkTTL(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("storage: negative ttl %v", ttl)
	}
	return nil
}

var errNilContext = errors.New("storage: nil context")

func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	return ctx.Err()
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
