package storage

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// go test -run '^$' -bench . ./engine/storage/  (with LUAHOST_TEST_REDIS_URL for redis)
func BenchmarkStore(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) Store
	}{
		{"memory", func(b *testing.B) Store { return mustOpen(b, Config{Backend: "memory"}) }},
		{"bolt", func(b *testing.B) Store {
			return mustOpen(b, Config{Backend: "bolt", Path: filepath.Join(b.TempDir(), "storage.db")})
		}},
		{"redis", func(b *testing.B) Store {
			u := os.Getenv("LUAHOST_TEST_REDIS_URL")
			if u == "" {
				b.Skip("LUAHOST_TEST_REDIS_URL not set; run .ci/redis.sh start")
			}
			s := mustOpen(b, Config{Backend: "redis", URL: u})
			b.Cleanup(func() {
				ctx := context.Background()
				keys, _ := s.List(ctx, testNS(b, "bench"), "")
				for _, k := range keys {
					s.Delete(ctx, testNS(b, "bench"), k)
				}
			})
			return s
		}},
	}
	value := []byte(`{"user":"@alice:example.org","count":12,"tags":["a","b"]}`)
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			b.Run("Get", func(b *testing.B) {
				s := be.open(b)
				ns := testNS(b, "bench")
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
				s := be.open(b)
				ns := testNS(b, "bench")
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := s.Set(ctx, ns, "k"+strconv.Itoa(i%1000), value, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("Incr", func(b *testing.B) {
				s := be.open(b)
				ns := testNS(b, "bench")
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := s.Incr(ctx, ns, "counter", 1, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("IncrParallel8", func(b *testing.B) {
				s := be.open(b)
				ns := testNS(b, "bench")
				// RunParallel starts parallelism*GOMAXPROCS goroutines: about 8.
				b.SetParallelism(max(1, (8+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
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
		})
	}
}

func mustOpen(b *testing.B, cfg Config) Store {
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
