package storage

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSweepEvery is how often the memory backend drops expired keys that nobody read.
var memSweepEvery = time.Minute

type memEntry struct {
	val []byte
	exp int64 // Unix nanoseconds, 0 = never
}

// memStore is the "memory" backend: a map per namespace under one RWMutex. Expired keys
// vanish when read and are swept by a goroutine that Close stops.
type memStore struct {
	now    func() time.Time
	mu     sync.RWMutex
	data   map[string]map[string]memEntry // nil once closed
	stop   chan struct{}
	done   chan struct{}
	closer sync.Once
}

// NewMemory returns a "memory" backend whose expiry times follow now
// (nil: time.Now). Tests of expiry pass a fake clock; Open with backend
// "memory" is the same store on the real clock.
func NewMemory(now func() time.Time) Store {
	if now == nil {
		now = time.Now
	}
	return newMemory(now)
}

func newMemory(now func() time.Time) *memStore {
	m := &memStore{
		now:  now,
		data: make(map[string]map[string]memEntry),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go m.sweeper()
	return m
}

func (m *memStore) sweeper() {
	defer close(m.done)
	t := time.NewTicker(memSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

func (m *memStore) sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixNano()
	for ns, b := range m.data {
		for k, e := range b {
			if Expired(e.exp, now) {
				delete(b, k)
			}
		}
		if len(b) == 0 {
			delete(m.data, ns)
		}
	}
}

func closedErr(backend, op, key string) error {
	return fmt.Errorf("storage: %s %s %q: %w", backend, op, key, ErrClosed)
}

func (m *memStore) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if err := CheckArgs(ctx, ns, key, 0); err != nil {
		return nil, false, err
	}
	m.mu.RLock()
	if m.data == nil {
		m.mu.RUnlock()
		return nil, false, closedErr("memory", "get", key)
	}
	e, ok := m.data[ns][key]
	m.mu.RUnlock()
	if !ok {
		return nil, false, nil
	}
	if now := m.now().UnixNano(); Expired(e.exp, now) {
		m.mu.Lock()
		if b := m.data[ns]; b != nil {
			if e2, ok := b[key]; ok && Expired(e2.exp, now) {
				delete(b, key)
			}
		}
		m.mu.Unlock()
		return nil, false, nil
	}
	// Stored slices are never modified in place, but the caller may modify the copy.
	return append([]byte{}, e.val...), true, nil
}

func (m *memStore) Set(ctx context.Context, ns, key string, value []byte, ttl time.Duration) error {
	if err := CheckArgs(ctx, ns, key, ttl); err != nil {
		return err
	}
	e := memEntry{val: append([]byte{}, value...), exp: ExpiryAt(m.now(), ttl)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return closedErr("memory", "set", key)
	}
	b := m.data[ns]
	if b == nil {
		b = make(map[string]memEntry)
		m.data[ns] = b
	}
	b[key] = e
	return nil
}

func (m *memStore) Delete(ctx context.Context, ns, key string) error {
	if err := CheckArgs(ctx, ns, key, 0); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return closedErr("memory", "delete", key)
	}
	if b := m.data[ns]; b != nil {
		delete(b, key)
		if len(b) == 0 {
			delete(m.data, ns)
		}
	}
	return nil
}

func (m *memStore) Incr(ctx context.Context, ns, key string, by int64, ttl time.Duration) (int64, error) {
	if err := CheckArgs(ctx, ns, key, ttl); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return 0, closedErr("memory", "incr", key)
	}
	now := m.now()
	b := m.data[ns]
	e, exists := b[key]
	if exists && Expired(e.exp, now.UnixNano()) {
		exists = false
	}
	n, err := Increment(key, e.val, exists, by)
	if err != nil {
		return 0, err
	}
	exp := e.exp
	if !exists {
		exp = ExpiryAt(now, ttl)
	}
	if b == nil {
		b = make(map[string]memEntry)
		m.data[ns] = b
	}
	b[key] = memEntry{val: strconv.AppendInt(nil, n, 10), exp: exp}
	return n, nil
}

func (m *memStore) List(ctx context.Context, ns, prefix string) ([]string, error) {
	if err := CheckNamespace(ctx, ns); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return nil, closedErr("memory", "list", prefix)
	}
	now := m.now().UnixNano()
	keys := []string{}
	for k, e := range m.data[ns] {
		if strings.HasPrefix(k, prefix) && !Expired(e.exp, now) {
			keys = append(keys, k)
		}
	}
	return SortedKeys(keys), nil
}

// live returns the entry at key unless it is missing or expired at now. m.mu must be held.
func (m *memStore) live(ns, key string, now int64) ([]byte, bool) {
	e, ok := m.data[ns][key]
	if !ok || Expired(e.exp, now) {
		return nil, false
	}
	return e.val, true
}

// put stores a copy of value, or deletes key when value is nil. m.mu must be held for writing.
func (m *memStore) put(ns, key string, value []byte, ttl time.Duration, now time.Time) {
	b := m.data[ns]
	if value == nil {
		if b != nil {
			delete(b, key)
			if len(b) == 0 {
				delete(m.data, ns)
			}
		}
		return
	}
	if b == nil {
		b = make(map[string]memEntry)
		m.data[ns] = b
	}
	b[key] = memEntry{val: append([]byte{}, value...), exp: ExpiryAt(now, ttl)}
}

func (m *memStore) SetIfAbsent(ctx context.Context, ns, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := CheckArgs(ctx, ns, key, ttl); err != nil {
		return false, err
	}
	if value == nil {
		value = []byte{} // as Set: nil stores an empty value
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return false, closedErr("memory", "setifabsent", key)
	}
	now := m.now()
	if _, ok := m.live(ns, key, now.UnixNano()); ok {
		return false, nil
	}
	m.put(ns, key, value, ttl, now)
	return true, nil
}

func (m *memStore) CompareAndSwap(ctx context.Context, ns, key string, old, new []byte, ttl time.Duration) (bool, error) {
	if err := CheckArgs(ctx, ns, key, ttl); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return false, closedErr("memory", "compareandswap", key)
	}
	now := m.now()
	cur, ok := m.live(ns, key, now.UnixNano())
	if ok != (old != nil) || !bytes.Equal(cur, old) {
		return false, nil
	}
	m.put(ns, key, new, ttl, now)
	return true, nil
}

// Txn holds the store's lock while fn runs, so nothing can change the keys meanwhile and fn
// runs exactly once.
func (m *memStore) Txn(ctx context.Context, ns string, keys []string, fn TxnFunc) error {
	keys, err := CheckKeys(ctx, ns, keys)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock() // also when fn panics
	if m.data == nil {
		return closedErr("memory", "txn", strings.Join(keys, " "))
	}
	now := m.now().UnixNano()
	vals := make(map[string][]byte, len(keys))
	for _, k := range keys {
		if v, ok := m.live(ns, k, now); ok {
			vals[k] = append([]byte{}, v...)
		}
	}
	writes, err := fn.Call(keys, vals)
	if err != nil {
		return err
	}
	at := m.now()
	for k, w := range writes {
		m.put(ns, k, w.Value, w.TTL, at)
	}
	return nil
}

func (m *memStore) Close() error {
	m.closer.Do(func() {
		close(m.stop)
		<-m.done
		m.mu.Lock()
		m.data = nil
		m.mu.Unlock()
	})
	return nil
}
