package storage

import (
	"context"
	"testing"
	"time"
)

func TestMemorySweep(t *testing.T) {
	m := newMemory()
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
