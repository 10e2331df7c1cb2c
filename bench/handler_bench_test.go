package bench_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/bench"
	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/stdlib"
)

// The handlers of bench/http.sh without the network, driven with
// httptest: engine.Handler() serving bench.lua ("lua"), bench.Native()
// ("native"), and the same bench.lua on a bare gopher-lua state behind a
// mutex ("bare": request as a plain table, JSON through the same stdlib
// codec, no coroutine, deadline or error mapping). lua minus bare is the
// engine's machinery (owner-goroutine hand-off, pooled coroutine,
// deadline, lazy request proxy, response copy); bare minus native is
// gopher-lua itself. The network and HTTP parsing, which dominate the
// loopback figures, are left out. Profile the Lua side with
//
//	go test -run x -bench 'Handler$/echo/lua' -cpuprofile /tmp/cpu.out ./bench/
//	go tool pprof -top bench.test /tmp/cpu.out

func handlers(tb testing.TB) map[string]http.Handler {
	cfg, err := engine.LoadConfig("luahost.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	e, err := engine.New(context.Background(), cfg, engine.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return map[string]http.Handler{"native": bench.Native(), "lua": e.Handler(), "bare": bare(tb)}
}

// bare runs bench.lua the naive way: one state, a mutex, the request
// built as a table per call, the handler called with CallByParam.
func bare(tb testing.TB) http.Handler {
	L := lua.NewState()
	tb.Cleanup(L.Close)
	routes := map[string]*lua.LTable{}
	api := L.NewTable()
	api.RawSetString("register_web_resource", L.NewFunction(func(L *lua.LState) int {
		routes[L.CheckString(1)] = L.CheckTable(2)
		return 0
	}))
	if err := L.DoFile("bench.lua"); err != nil {
		tb.Fatal(err)
	}
	if err := L.CallByParam(lua.P{Fn: L.GetField(L.Get(-1), "new"), Protect: true}, L.NewTable(), api); err != nil {
		tb.Fatal(err)
	}
	L.Pop(1)
	jsonFn := L.NewFunction(func(L *lua.LState) int {
		v, err := stdlib.DecodeJSON(L, []byte(L.CheckTable(1).RawGetString("body").(lua.LString)))
		if err != nil {
			L.RaiseError("Content not JSON: %v", err)
		}
		L.Push(v)
		return 1
	})
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Method != http.MethodGet {
			body, _ = io.ReadAll(io.LimitReader(r.Body, engine.MaxRequestBody))
		}
		mu.Lock()
		fn, _ := routes[r.URL.Path].RawGetString(r.Method).(*lua.LFunction)
		req := L.NewTable()
		req.RawSetString("method", lua.LString(r.Method))
		req.RawSetString("path", lua.LString(r.URL.Path))
		req.RawSetString("body", lua.LString(body))
		req.RawSetString("json", jsonFn)
		err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, req)
		var out []byte
		status := http.StatusInternalServerError
		if err == nil {
			resp := L.CheckTable(-1)
			status = int(resp.RawGetString("status").(lua.LNumber))
			out, err = stdlib.EncodeJSON(L, resp.RawGetString("json"), false)
			L.Pop(1)
		}
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(out)
	})
}

func eventBody(tb testing.TB) []byte {
	b, err := os.ReadFile("event.json")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type endpoint struct {
	name, method, path string
	body               []byte
}

func endpoints(tb testing.TB) []endpoint {
	return []endpoint{
		{"hello", http.MethodGet, bench.HelloPath, nil},
		{"echo", http.MethodPost, bench.EchoPath, eventBody(tb)},
	}
}

func serve(tb testing.TB, h http.Handler, ep endpoint) *httptest.ResponseRecorder {
	var req *http.Request
	if ep.body != nil {
		req = httptest.NewRequest(ep.method, ep.path, bytes.NewReader(ep.body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(ep.method, ep.path, nil)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		tb.Fatalf("%s %s: %d %s", ep.method, ep.path, w.Code, w.Body)
	}
	return w
}

// TestTwinsAgree keeps the benchmark honest: both sides answer the same.
func TestTwinsAgree(t *testing.T) {
	hs := handlers(t)
	for _, ep := range endpoints(t) {
		native := serve(t, hs["native"], ep)
		for _, side := range []string{"lua", "bare"} {
			got := serve(t, hs[side], ep)
			if native.Body.String() != got.Body.String() ||
				native.Header().Get("Content-Type") != got.Header().Get("Content-Type") {
				t.Errorf("%s: native %q (%s), %s %q (%s)", ep.name, native.Body,
					native.Header().Get("Content-Type"), side, got.Body, got.Header().Get("Content-Type"))
			}
		}
	}
}

// BenchmarkHandler serves one request at a time.
func BenchmarkHandler(b *testing.B) {
	hs := handlers(b)
	for _, ep := range endpoints(b) {
		for _, side := range []string{"native", "bare", "lua"} {
			h := hs[side]
			b.Run(ep.name+"/"+side, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					serve(b, h, ep)
				}
			})
		}
	}
}

// BenchmarkHandlerParallel serves from GOMAXPROCS goroutines; the Lua
// sides run every call on their one state.
func BenchmarkHandlerParallel(b *testing.B) {
	hs := handlers(b)
	for _, ep := range endpoints(b) {
		for _, side := range []string{"native", "bare", "lua"} {
			h := hs[side]
			b.Run(ep.name+"/"+side, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						serve(b, h, ep)
					}
				})
			})
		}
	}
}

// TestServeForProfile serves the Lua and native handlers on loopback for
// a while so wrk can load them while the test binary records a profile:
//
//	go test -c -o /tmp/bench.test ./bench/
//	cd bench && LUAHOST_BENCH_SERVE=/tmp/addrs /tmp/bench.test \
//	    -test.run ServeForProfile -test.cpuprofile /tmp/serve.out &
//	wrk -t2 -c32 -d10s http://$(sed -n 1p /tmp/addrs)/_synapse/client/bench/hello
//
// The file gets the Lua address on line 1 and the native one on line 2;
// the servers stop after LUAHOST_BENCH_SECONDS (default 15).
func TestServeForProfile(t *testing.T) {
	file := os.Getenv("LUAHOST_BENCH_SERVE")
	if file == "" {
		t.Skip("set LUAHOST_BENCH_SERVE=FILE to serve for profiling")
	}
	secs := 15 * time.Second
	if s := os.Getenv("LUAHOST_BENCH_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		secs = time.Duration(n) * time.Second
	}
	hs := handlers(t)
	var addrs []byte
	for _, side := range []string{"lua", "native"} {
		srv := httptest.NewServer(hs[side])
		t.Cleanup(srv.Close)
		addrs = append(addrs, srv.Listener.Addr().String()+"\n"...)
	}
	if err := os.WriteFile(file, addrs, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(secs)
}
