package storage

import (
	"context"
	"fmt"
	"sort"
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
	mu     sync.RWMutex
	data   map[string]map[string]memEntry // nil once closed
	stop   chan struct{}
	done   chan struct{}
	closer sync.Once
}

func newMemory() *memStore {
	m := &memStore{
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
	now := time.Now().UnixNano()
	for ns, b := range m.data {
		for k, e := range b {
			if expired(e.exp, now) {
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
	if err := check(ctx, ns, key, 0); err != nil {
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
	if now := time.Now().UnixNano(); expired(e.exp, now) {
		m.mu.Lock()
		if b := m.data[ns]; b != nil {
			if e2, ok := b[key]; ok && expired(e2.exp, now) {
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
	if err := check(ctx, ns, key, ttl); err != nil {
		return err
	}
	e := memEntry{val: append([]byte{}, value...), exp: expiryAt(time.Now(), ttl)}
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
	if err := check(ctx, ns, key, 0); err != nil {
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
	if err := check(ctx, ns, key, ttl); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return 0, closedErr("memory", "incr", key)
	}
	now := time.Now()
	b := m.data[ns]
	e, exists := b[key]
	if exists && expired(e.exp, now.UnixNano()) {
		exists = false
	}
	n, err := incrValue(key, e.val, exists, by)
	if err != nil {
		return 0, err
	}
	exp := e.exp
	if !exists {
		exp = expiryAt(now, ttl)
	}
	if b == nil {
		b = make(map[string]memEntry)
		m.data[ns] = b
	}
	b[key] = memEntry{val: strconv.AppendInt(nil, n, 10), exp: exp}
	return n, nil
}

func (m *memStore) List(ctx context.Context, ns, prefix string) ([]string, error) {
	if err := validateNS(ns); err != nil {
		return nil, err
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.data == nil {
		return nil, closedErr("memory", "list", prefix)
	}
	now := time.Now().UnixNano()
	keys := []string{}
	for k, e := range m.data[ns] {
		if strings.HasPrefix(k, prefix) && !expired(e.exp, now) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return truncateSorted(keys), nil
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
