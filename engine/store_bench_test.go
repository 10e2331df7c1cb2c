package engine_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"

	"github.com/luahost/luahost/engine/storage"
)

// BenchmarkStore measures api.store from Lua, one check_event_for_spam
// callback per operation, against the same backend's Go call in the same
// run: ns/op is the Lua call, go-ns/op the Store method alone, lua/go
// their ratio. callback-noop is the engine's cost of a callback that does
// nothing, callback-yield of one making a yielding host call that does
// nothing (the floor for any api.store call), and incr-8x runs 8
// concurrent callbacks on one module.
//
//	go test -run '^$' -bench BenchmarkStore ./engine/   (LUAHOST_TEST_REDIS_URL for redis)
func BenchmarkStore(b *testing.B) {
	cleanupStoreRedis(b)
	ctx := context.Background()
	value := []byte(`{"a":1,"b":"x","c":[true,false]}`)
	// Baselines: a callback that does nothing, and one that makes a
	// yielding host call that does nothing (api.sleep(0)).
	for _, op := range []string{"noop", "yield"} {
		b.Run("callback-"+op, func(b *testing.B) {
			st := openTestStore(b, storage.Config{Backend: "memory"})
			e := newStoreEngine(b, st, nil, "", storeModule{storeModName("bench"), storeBenchModule, ""})
			ev := storeBenchEvent(op)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.CheckEventForSpam(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, be := range storeBackends() {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)(b)
			ns := storeModName("bench")
			e := newStoreEngine(b, st, nil, "", storeModule{ns, storeBenchModule, ""})
			if err := st.Set(ctx, ns, "k", value, 0); err != nil {
				b.Fatal(err)
			}
			goOps := map[string]func() error{
				"get": func() error { _, _, err := st.Get(ctx, ns, "k"); return err },
				"set": func() error { return st.Set(ctx, ns, "k", value, 0) },
				"incr": func() error {
					_, err := st.Incr(ctx, ns, "c", 1, 0)
					return err
				},
			}
			for _, op := range []string{"get", "set", "incr"} {
				b.Run(op, func(b *testing.B) {
					ev := storeBenchEvent(op)
					b.ReportAllocs()
					b.ResetTimer()
					start := time.Now()
					for i := 0; i < b.N; i++ {
						if _, err := e.CheckEventForSpam(ctx, ev); err != nil {
							b.Fatal(err)
						}
					}
					luaNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
					b.StopTimer()
					goOp := goOps[op]
					start = time.Now()
					for i := 0; i < b.N; i++ {
						if err := goOp(); err != nil {
							b.Fatal(err)
						}
					}
					goNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
					b.ReportMetric(goNs, "go-ns/op")
					b.ReportMetric(luaNs/goNs, "lua/go")
				})
			}
			b.Run("incr-8x", func(b *testing.B) {
				ev := storeBenchEvent("incr")
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for g := 0; g < 8; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							if _, err := e.CheckEventForSpam(ctx, ev); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "incr/s")
			})
		})
	}
}

func storeBenchEvent(op string) *Event {
	return &Event{Type: "m.room.message", RoomID: "!r:example.org", Sender: "@a:example.org",
		Content: map[string]any{"body": op}}
}

const storeBenchModule = `return { new = function(config, api)
  local s = api.store
  local value = { a = 1, b = "x", c = { true, false } }
  local ops = {
    noop = function() end,
    yield = function() api.sleep(0) end,
    get = function() assert(s.get("k") ~= nil) end,
    set = function() s.set("k", value) end,
    incr = function() s.incr("c") end,
    update = function() s.update("u", function(v) return (v or 0) + 1 end) end,
    transaction = function()
      s.transaction({ "t1", "t2" }, function(v) return { t1 = (v.t1 or 0) + 1, t2 = (v.t2 or 0) - 1 } end)
    end,
  }
  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
    ops[ev.content.body]()
    return api.NOT_SPAM
  end }
end }
`

// BenchmarkStoreAtomic measures api.store.update and a two-key
// api.store.transaction against incr on the same backend in the same run
// (x-incr is the ratio), one callback per operation, uncontended.
//
//	go test -run '^$' -bench BenchmarkStoreAtomic ./engine/
func BenchmarkStoreAtomic(b *testing.B) {
	cleanupStoreRedis(b)
	ctx := context.Background()
	for _, be := range storeBackends() {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)(b)
			e := newStoreEngine(b, st, nil, "", storeModule{storeModName("bench"), storeBenchModule, ""})
			perOp := func(op string, n int) float64 {
				ev := storeBenchEvent(op)
				start := time.Now()
				for i := 0; i < n; i++ {
					if _, err := e.CheckEventForSpam(ctx, ev); err != nil {
						b.Fatal(err)
					}
				}
				return float64(time.Since(start).Nanoseconds()) / float64(n)
			}
			for _, op := range []string{"update", "transaction"} {
				b.Run(op, func(b *testing.B) {
					b.ReportAllocs()
					ns := perOp(op, b.N)
					b.StopTimer()
					b.ReportMetric(ns/perOp("incr", b.N), "x-incr")
				})
			}
		})
	}
}
