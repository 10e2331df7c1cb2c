package storage

import (
	"context"
	"testing"
	"time"
)

func TestMemorySweep(t *testing.T) {
	m := newMemory(time.Now)
	defer m.Close()
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if err := m.Set(ctx, "ns", k, []byte(`1`), time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Set(ctx, "ns", "kept", []byte(`1`), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, "gone", "k", []byte(`1`), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	m.sweep()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.data["ns"]) != 1 {
		t.Fatalf("after sweep: %v", m.data["ns"])
	}
	if _, ok := m.data["gone"]; ok {
		t.Fatal("an emptied namespace was kept")
	}
}

// Expiry follows the clock NewMemory is given, so a test can move time on
// instead of waiting.
func TestMemoryFollowsItsClock(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := NewMemory(func() time.Time { return now })
	defer m.Close()
	ctx := context.Background()
	if err := m.Set(ctx, "ns", "k", []byte(`1`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Incr(ctx, "ns", "n", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Second)
	if _, found, _ := m.Get(ctx, "ns", "k"); !found {
		t.Fatal("expired 1 s before its TTL")
	}
	now = now.Add(time.Second)
	if _, found, _ := m.Get(ctx, "ns", "k"); found {
		t.Fatal("still there at its TTL")
	}
	if keys, _ := m.List(ctx, "ns", ""); len(keys) != 0 {
		t.Fatalf("List shows expired keys: %v", keys)
	}
	if n, _ := m.Incr(ctx, "ns", "n", 1, time.Minute); n != 1 {
		t.Fatalf("Incr of an expired counter gave %d, want 1", n)
	}
}
