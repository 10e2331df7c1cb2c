// Package bolt is the "bolt" storage backend, luahost's default: a go.etcd.io/bbolt file on
// disk, one bucket per namespace. A program enables it by importing the package for its side
// effect, which registers it with engine/storage:
//
//	import _ "github.com/luahost/luahost/engine/storage/bolt"
//
// and then opens it with storage.Open(storage.Config{Backend: "bolt", Path: ...}).
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/luahost/luahost/engine/storage"
)

func init() {
	storage.Register("bolt", func(cfg storage.Config) (storage.Store, error) { return openBolt(cfg.Path) })
}

var (
	// boltLockTimeout is how long Open waits for another process's lock on the file.
	boltLockTimeout = 2 * time.Second
	// boltSweepEvery is how often expired keys that nobody read are deleted.
	boltSweepEvery = time.Minute
)

// boltSweepBatch is the most expired keys deleted in one write transaction of a sweep.
const boltSweepBatch = 1000

// boltHeader is the size of the expiry stored before each value: a big-endian uint64 of Unix
// nanoseconds, 0 for no expiry.
const boltHeader = 8

// boltStore is the "bolt" backend: one bucket per namespace, each value prefixed with its
// expiry. Expired keys read as missing and are deleted when met, and by a periodic sweep
// whose goroutine Close stops.
type boltStore struct {
	db     *bbolt.DB
	path   string
	writes chan *boltWrite // unbuffered: a write sent is a write the committer answers
	stop   chan struct{}
	wg     sync.WaitGroup // sweeper and committer
	closer sync.Once
	err    error
}

// boltWrite is one caller's write, run by the committer inside a shared transaction. fn must
// compute everything from the transaction (it may be run again alone) and must not write
// anything before deciding on a usage error, which it reports through its closure, returning
// nil; a returned error is a bolt failure that aborts the transaction.
type boltWrite struct {
	fn   func(*bbolt.Tx) error
	done chan error
}

// boltMaxGroup is the most writes committed together (one fsync for all of them).
const boltMaxGroup = 256

func openBolt(path string) (*boltStore, error) {
	if path == "" {
		return nil, errors.New("storage: bolt: no database path configured")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("storage: bolt database %s: create directory: %w", path, err)
		}
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: boltLockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("storage: bolt database %s is locked by another process", path)
		}
		return nil, fmt.Errorf("storage: open bolt database %s: %w", path, err)
	}
	s := &boltStore{db: db, path: path, writes: make(chan *boltWrite), stop: make(chan struct{})}
	s.wg.Add(2)
	go s.sweeper()
	go s.committer()
	return s, nil
}

// write runs fn in a write transaction. Writes that arrive while a transaction is committing
// are grouped into the next one: bolt fsyncs on every commit, so concurrent writers share the
// cost instead of queueing for it one by one.
func (s *boltStore) write(ctx context.Context, fn func(*bbolt.Tx) error) error {
	w := &boltWrite{fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- w:
		return <-w.done
	case <-s.stop:
		return storage.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *boltStore) committer() {
	defer s.wg.Done()
	for {
		var group []*boltWrite
		select {
		case <-s.stop:
			return
		case w := <-s.writes:
			group = append(group, w)
		}
	gather:
		for len(group) < boltMaxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break gather
			}
		}
		s.commit(group)
	}
}

func (s *boltStore) commit(group []*boltWrite) {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, w := range group {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(group) > 1 {
		// Find out whose write failed: run each alone.
		for _, w := range group {
			w.done <- s.db.Update(w.fn)
		}
		return
	}
	for _, w := range group {
		w.done <- err
	}
}

func encodeBolt(value []byte, exp int64) []byte {
	buf := make([]byte, boltHeader+len(value))
	binary.BigEndian.PutUint64(buf, uint64(exp))
	copy(buf[boltHeader:], value)
	return buf
}

// decodeBolt splits a stored record; a record too short to hold a header counts as expired
// garbage.
func decodeBolt(rec []byte) (value []byte, exp int64, ok bool) {
	if len(rec) < boltHeader {
		return nil, 0, false
	}
	return rec[boltHeader:], int64(binary.BigEndian.Uint64(rec)), true
}

func (s *boltStore) wrap(op, key string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = storage.ErrClosed
	}
	return fmt.Errorf("storage: bolt %s %q: %w", op, key, err)
}

func (s *boltStore) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if err := storage.CheckArgs(ctx, ns, key, 0); err != nil {
		return nil, false, err
	}
	var (
		val   []byte
		found bool
		stale bool
	)
	now := time.Now().UnixNano()
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(ns))
		if b == nil {
			return nil
		}
		rec := b.Get([]byte(key))
		if rec == nil {
			return nil
		}
		v, exp, ok := decodeBolt(rec)
		if !ok || storage.Expired(exp, now) {
			stale = true
			return nil
		}
		val = append([]byte{}, v...) // rec is only valid inside the transaction
		found = true
		return nil
	})
	if err != nil {
		return nil, false, s.wrap("get", key, err)
	}
	if stale {
		// Delete lazily; re-check inside the write transaction in case it was set meanwhile.
		err := s.write(ctx, func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte(ns))
			if b == nil {
				return nil
			}
			if _, exp, ok := decodeBolt(b.Get([]byte(key))); !ok || storage.Expired(exp, now) {
				return b.Delete([]byte(key))
			}
			return nil
		})
		if err != nil {
			return nil, false, s.wrap("get", key, err)
		}
	}
	return val, found, nil
}

func (s *boltStore) Set(ctx context.Context, ns, key string, value []byte, ttl time.Duration) error {
	if err := storage.CheckArgs(ctx, ns, key, ttl); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(ns))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), encodeBolt(value, storage.ExpiryAt(time.Now(), ttl)))
	})
	if err != nil {
		return s.wrap("set", key, err)
	}
	return nil
}

func (s *boltStore) Delete(ctx context.Context, ns, key string) error {
	if err := storage.CheckArgs(ctx, ns, key, 0); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(ns))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return s.wrap("delete", key, err)
	}
	return nil
}

func (s *boltStore) Incr(ctx context.Context, ns, key string, by int64, ttl time.Duration) (int64, error) {
	if err := storage.CheckArgs(ctx, ns, key, ttl); err != nil {
		return 0, err
	}
	var n int64
	var usage error
	err := s.write(ctx, func(tx *bbolt.Tx) error {
		now := time.Now()
		b := tx.Bucket([]byte(ns))
		var old []byte
		var exp int64
		exists := false
		if b != nil {
			old, exp, exists = decodeBolt(b.Get([]byte(key)))
		}
		if exists && storage.Expired(exp, now.UnixNano()) {
			exists = false
		}
		if !exists {
			exp = storage.ExpiryAt(now, ttl)
		}
		n, usage = storage.Increment(key, old, exists, by)
		if usage != nil {
			return nil // nothing written; the shared transaction goes on
		}
		if b == nil {
			var err error
			if b, err = tx.CreateBucketIfNotExists([]byte(ns)); err != nil {
				return err
			}
		}
		return b.Put([]byte(key), encodeBolt(strconv.AppendInt(nil, n, 10), exp))
	})
	if err != nil {
		return 0, s.wrap("incr", key, err)
	}
	if usage != nil {
		return 0, usage
	}
	return n, nil
}

func (s *boltStore) List(ctx context.Context, ns, prefix string) ([]string, error) {
	if err := storage.CheckNamespace(ctx, ns); err != nil {
		return nil, err
	}
	keys := []string{}
	now := time.Now().UnixNano()
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(ns))
		if b == nil {
			return nil
		}
		p := []byte(prefix)
		c := b.Cursor()
		for k, rec := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, rec = c.Next() {
			if _, exp, ok := decodeBolt(rec); !ok || storage.Expired(exp, now) {
				continue
			}
			keys = append(keys, string(k))
			if len(keys) == storage.MaxListKeys {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("list", prefix, err)
	}
	return keys, nil
}

// live returns the value at key in b (which may be nil) unless it is missing or expired.
func live(b *bbolt.Bucket, key string, now int64) ([]byte, bool) {
	if b == nil {
		return nil, false
	}
	v, exp, ok := decodeBolt(b.Get([]byte(key)))
	if !ok || storage.Expired(exp, now) {
		return nil, false
	}
	return v, true
}

// put stores value at key with its expiry, or deletes key when value is nil.
func put(tx *bbolt.Tx, ns, key string, value []byte, ttl time.Duration, now time.Time) error {
	if value == nil {
		if b := tx.Bucket([]byte(ns)); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	}
	b, err := tx.CreateBucketIfNotExists([]byte(ns))
	if err != nil {
		return err
	}
	return b.Put([]byte(key), encodeBolt(value, storage.ExpiryAt(now, ttl)))
}

func (s *boltStore) SetIfAbsent(ctx context.Context, ns, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := storage.CheckArgs(ctx, ns, key, ttl); err != nil {
		return false, err
	}
	if value == nil {
		value = []byte{} // as Set: nil stores an empty value
	}
	var set bool
	err := s.write(ctx, func(tx *bbolt.Tx) error {
		now := time.Now()
		if _, ok := live(tx.Bucket([]byte(ns)), key, now.UnixNano()); ok {
			set = false
			return nil
		}
		set = true
		return put(tx, ns, key, value, ttl, now)
	})
	if err != nil {
		return false, s.wrap("setifabsent", key, err)
	}
	return set, nil
}

func (s *boltStore) CompareAndSwap(ctx context.Context, ns, key string, old, new []byte, ttl time.Duration) (bool, error) {
	if err := storage.CheckArgs(ctx, ns, key, ttl); err != nil {
		return false, err
	}
	var swapped bool
	err := s.write(ctx, func(tx *bbolt.Tx) error {
		now := time.Now()
		cur, ok := live(tx.Bucket([]byte(ns)), key, now.UnixNano())
		swapped = ok == (old != nil) && bytes.Equal(cur, old)
		if !swapped {
			return nil
		}
		return put(tx, ns, key, new, ttl, now)
	})
	if err != nil {
		return false, s.wrap("compareandswap", key, err)
	}
	return swapped, nil
}

// Txn runs fn inside the write transaction, which bolt grants to one writer at a time: the
// keys cannot change while fn runs, so it runs once (again only if the shared transaction
// fails and each write is redone alone). fn runs on the committer goroutine; its panic is
// carried back and raised again in the caller's.
func (s *boltStore) Txn(ctx context.Context, ns string, keys []string, fn storage.TxnFunc) error {
	keys, err := storage.CheckKeys(ctx, ns, keys)
	if err != nil {
		return err
	}
	var (
		usage    error
		panicked *txnPanic
	)
	err = s.write(ctx, func(tx *bbolt.Tx) error {
		usage, panicked = nil, nil
		b := tx.Bucket([]byte(ns))
		now := time.Now()
		vals := make(map[string][]byte, len(keys))
		for _, k := range keys {
			if v, ok := live(b, k, now.UnixNano()); ok {
				vals[k] = append([]byte{}, v...) // v is only valid inside the transaction
			}
		}
		var writes map[string]storage.Write
		writes, panicked, usage = callTxn(fn, keys, vals)
		if usage != nil || panicked != nil {
			return nil // nothing written; the shared transaction goes on
		}
		for k, w := range writes {
			if err := put(tx, ns, k, w.Value, w.TTL, now); err != nil {
				return err
			}
		}
		return nil
	})
	if panicked != nil {
		panic(panicked.v)
	}
	if err != nil {
		return s.wrap("txn", strings.Join(keys, " "), err)
	}
	return usage
}

type txnPanic struct{ v any }

// callTxn calls fn, turning a panic into a value: the committer goroutine must survive it.
func callTxn(fn storage.TxnFunc, keys []string, vals map[string][]byte) (writes map[string]storage.Write, p *txnPanic, err error) {
	defer func() {
		if r := recover(); r != nil {
			p = &txnPanic{r}
		}
	}()
	writes, err = fn.Call(keys, vals)
	return writes, nil, err
}

func (s *boltStore) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(boltSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// An error here (disk trouble) shows up in the next call's error as well.
			_ = s.sweep()
		}
	}
}

type boltKey struct{ ns, key []byte }

// sweep deletes expired keys in batches, so that writers are not held up for long.
func (s *boltStore) sweep() error {
	for {
		select {
		case <-s.stop:
			return nil
		default:
		}
		now := time.Now().UnixNano()
		var batch []boltKey
		err := s.db.View(func(tx *bbolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
				return b.ForEach(func(k, rec []byte) error {
					if _, exp, ok := decodeBolt(rec); !ok || storage.Expired(exp, now) {
						batch = append(batch, boltKey{append([]byte{}, name...), append([]byte{}, k...)})
						if len(batch) == boltSweepBatch {
							return errBatchFull
						}
					}
					return nil
				})
			})
		})
		if err != nil && !errors.Is(err, errBatchFull) {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		err = s.db.Update(func(tx *bbolt.Tx) error {
			for _, bk := range batch {
				b := tx.Bucket(bk.ns)
				if b == nil {
					continue
				}
				if _, exp, ok := decodeBolt(b.Get(bk.key)); !ok || storage.Expired(exp, now) {
					if err := b.Delete(bk.key); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(batch) < boltSweepBatch {
			return nil
		}
	}
}

var errBatchFull = errors.New("batch full")

func (s *boltStore) Close() error {
	s.closer.Do(func() {
		close(s.stop)
		s.wg.Wait()
		if err := s.db.Close(); err != nil {
			s.err = fmt.Errorf("storage: close bolt database %s: %w", s.path, err)
		}
	})
	return s.err
}
