package storagetest

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/luahost/luahost/engine/storage"
)

// Benchmark measures the common operations of a backend; open returns a new store for the
// running sub-benchmark. A backend's package runs it as
//
//	func BenchmarkStore(b *testing.B) { storagetest.Benchmark(b, open) }
//
// and go test -run '^$' -bench . ./engine/storage/... compares the backends.
func Benchmark(b *testing.B, open func(b *testing.B) storage.Store) {
	ctx := context.Background()
	value := []byte(`{"user":"@alice:example.org","count":12,"tags":["a","b"]}`)
	b.Run("Get", func(b *testing.B) {
		s := open(b)
		ns := Namespace(b, "bench")
		if err := s.Set(ctx, ns, "k", value, 0); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, found, err := s.Get(ctx, ns, "k"); err != nil || !found {
				b.Fatal(found, err)
			}
		}
	})
	b.Run("Set", func(b *testing.B) {
		s := open(b)
		ns := Namespace(b, "bench")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := s.Set(ctx, ns, "k"+strconv.Itoa(i%1000), value, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Incr", func(b *testing.B) {
		s := open(b)
		ns := Namespace(b, "bench")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Incr(ctx, ns, "counter", 1, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("IncrParallel8", func(b *testing.B) {
		s := open(b)
		ns := Namespace(b, "bench")
		parallel8(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Incr(ctx, ns, "counter", 1, 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// An update as api.store.update does it: Get, compute, CompareAndSwap. Compare with Incr.
	b.Run("UpdateCAS", func(b *testing.B) {
		s := open(b)
		ns := Namespace(b, "bench")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := casIncr(ctx, s, ns, "counter"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpdateCASParallel8", func(b *testing.B) {
		s := open(b)
		ns := Namespace(b, "bench")
		parallel8(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := casIncr(ctx, s, ns, "counter"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// A two-key transaction: move one unit from one counter to another.
	b.Run("TxnTransfer", func(b *testing.B) {
		s := open(b)
		ns := Namespace(b, "bench")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := s.Txn(ctx, ns, []string{"from", "to"}, transfer("from", "to", 1)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SetIfAbsent", func(b *testing.B) {
		s := open(b)
		ns := Namespace(b, "bench")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.SetIfAbsent(ctx, ns, "token:"+strconv.Itoa(i%1000), value, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// parallel8 makes RunParallel start about 8 goroutines (parallelism*GOMAXPROCS).
func parallel8(b *testing.B) {
	b.SetParallelism(max(1, (8+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
}
