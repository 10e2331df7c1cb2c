package bench_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
)

// Callbacks and host calls through the engine, each next to the baseline
// it is judged against (issue 13), all in one run. bench/compare.sh runs
// these in alternating rounds with the CPython baseline
// (bench/python/spam_check.py) and prints the ratios; docs/benchmarks.md
// says what each baseline is.
//
// Baselines use gopher-lua directly: no sandbox, deadline, combine rule or
// hand-off, only what an embedder must do at the least.

// spamFn is the spam check every message goes through, as an admin would
// write it: the same script as benchSpamFn in engine/bench_test.go.
const spamFn = `function(ev)
	if evil[ev.sender] then return "M_FORBIDDEN" end
	local body = ev.content.body
	if type(body) == "string" and body:find("buy cheap", 1, true) then return "M_FORBIDDEN" end
	return "NOT_SPAM"
end`

// spamModule is a small module: one spam checker.
const spamModule = `local evil = { ["@spammer:example.org"] = true }
return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = ` + spamFn + ` } end }`

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// message is an m.room.message with a 2-field content.
func message(sender, body string) *engine.Event {
	return &engine.Event{Type: "m.room.message", RoomID: "!abcdefgh:example.org", Sender: sender,
		EventID: "$0123456789abcdef", OriginServerTS: 1700000000000,
		Content: map[string]any{"msgtype": "m.text", "body": body}}
}

func hamEvent() *engine.Event {
	return message("@alice:example.org", "hello there, how are you doing today?")
}

// modulesYAML is a config loading file n times, as m1..mn, with extra
// keys for every entry (e.g. "instances: 2").
func modulesYAML(file string, n int, extra string) string {
	var sb strings.Builder
	sb.WriteString("server_name: example.org\nmodules:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&sb, "  - module: %s\n    name: m%d\n", file, i)
		if extra != "" {
			fmt.Fprintf(&sb, "    %s\n", extra)
		}
	}
	return sb.String()
}

// newEngine loads yaml over the given scripts; o's FS and Logger are
// filled in.
func newEngine(tb testing.TB, yaml string, files map[string]string, o engine.Options) *engine.Engine {
	tb.Helper()
	cfg, err := engine.ParseConfig([]byte(yaml), "bench.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	o.FS, o.Logger = fsys, quiet
	e, err := engine.New(context.Background(), cfg, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// naiveSpam is the naive embedding of spamFn: one bare state, the event
// built as a Lua table by hand for every call, CallByParam.
type naiveSpam struct {
	L  *lua.LState
	fn lua.LValue
}

func newNaiveSpam(tb testing.TB) *naiveSpam {
	L := lua.NewState()
	tb.Cleanup(L.Close)
	if err := L.DoString(`evil = { ["@spammer:example.org"] = true }; check = ` + spamFn); err != nil {
		tb.Fatal(err)
	}
	return &naiveSpam{L: L, fn: L.GetGlobal("check")}
}

func (n *naiveSpam) check(ev *engine.Event) (string, error) {
	L := n.L
	t := L.NewTable()
	t.RawSetString("type", lua.LString(ev.Type))
	t.RawSetString("room_id", lua.LString(ev.RoomID))
	t.RawSetString("sender", lua.LString(ev.Sender))
	t.RawSetString("event_id", lua.LString(ev.EventID))
	t.RawSetString("origin_server_ts", lua.LNumber(ev.OriginServerTS))
	content := L.NewTable()
	for k, v := range ev.Content {
		content.RawSetString(k, lua.LString(v.(string)))
	}
	t.RawSetString("content", content)
	if err := L.CallByParam(lua.P{Fn: n.fn, NRet: 1, Protect: true}, t); err != nil {
		return "", err
	}
	r := L.Get(-1).String()
	L.Pop(1)
	return r, nil
}

// TestSpamTwinsAgree keeps BenchmarkSpamCheck honest: the engine and the
// naive embedding reach the same verdicts on the same events.
func TestSpamTwinsAgree(t *testing.T) {
	e := newEngine(t, modulesYAML("m.lua", 1, ""), map[string]string{"m.lua": spamModule}, engine.Options{})
	naive := newNaiveSpam(t)
	for _, tc := range []struct {
		name    string
		ev      *engine.Event
		allowed bool
	}{
		{"ham", hamEvent(), true},
		{"evil sender", message("@spammer:example.org", "hi"), false},
		{"spam body", message("@alice:example.org", "buy cheap watches"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.CheckEventForSpam(context.Background(), tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := naive.check(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed() != tc.allowed || (got == "NOT_SPAM") != tc.allowed {
				t.Errorf("engine allowed=%v, naive %q; want allowed=%v", d.Allowed(), got, tc.allowed)
			}
		})
	}
}

// BenchmarkSpamCheck: check_event_for_spam of one module through the
// engine, against the naive embedding of the same function.
func BenchmarkSpamCheck(b *testing.B) {
	ev := hamEvent()
	b.Run("engine", func(b *testing.B) {
		e := newEngine(b, modulesYAML("m.lua", 1, ""), map[string]string{"m.lua": spamModule}, engine.Options{})
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			d, err := e.CheckEventForSpam(ctx, ev)
			if err != nil || !d.Allowed() {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("naive", func(b *testing.B) {
		n := newNaiveSpam(b)
		b.ReportAllocs()
		for b.Loop() {
			if r, err := n.check(ev); err != nil || r != "NOT_SPAM" {
				b.Fatal(r, err)
			}
		}
	})
}

// BenchmarkEmptyCallback: the engine's fixed cost per callback (a spam
// checker that reads nothing), against resuming a reused coroutine that
// loops on yield: the least a coroutine-based embedding pays per call.
func BenchmarkEmptyCallback(b *testing.B) {
	b.Run("engine", func(b *testing.B) {
		e := newEngine(b, modulesYAML("m.lua", 1, ""), map[string]string{
			"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{
				check_event_for_spam = function(ev) return "NOT_SPAM" end } end }`,
		}, engine.Options{})
		ev := hamEvent()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			d, err := e.CheckEventForSpam(ctx, ev)
			if err != nil || !d.Allowed() {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("bare-resume", func(b *testing.B) {
		L := lua.NewState()
		defer L.Close()
		if err := L.DoString(`loop = function(ev) while true do ev = coroutine.yield("NOT_SPAM") end end`); err != nil {
			b.Fatal(err)
		}
		fn := L.GetGlobal("loop").(*lua.LFunction)
		co, _ := L.NewThread()
		arg := L.NewTable()
		b.ReportAllocs()
		for b.Loop() {
			st, err, vals := L.Resume(co, fn, arg)
			if err != nil || st != lua.ResumeYield || vals[0] != lua.LString("NOT_SPAM") {
				b.Fatal(st, err, vals)
			}
		}
	})
}

// hostCallsPerCallback is how many host calls one callback of
// BenchmarkHostCall makes; the callback's own cost is spread over them.
const hostCallsPerCallback = 1000

// The host calls BenchmarkHostCall makes: a string answer and a table one.
var hostCalls = []struct {
	name, lua string
}{
	{"exists", `api.check_user_exists("@alice:example.org")`},
	{"profile", `api.get_profile_for_user("@alice:example.org")`},
}

func benchHost(tb testing.TB) *memhost.Host {
	h := memhost.New("example.org")
	if _, err := h.CreateUser("@alice:example.org", false); err != nil {
		tb.Fatal(err)
	}
	if err := h.SetDisplayName(context.Background(), "@alice:example.org", "Alice"); err != nil {
		tb.Fatal(err)
	}
	return h
}

// hostCallLoop runs b.N Lua host calls in callbacks of up to
// hostCallsPerCallback each; run does one callback of n calls.
func hostCallLoop(b *testing.B, run func(n int) error) {
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(hostCallsPerCallback, b.N-done)
		if err := run(n); err != nil {
			b.Fatal(err)
		}
		done += n
	}
}

// BenchmarkHostCall: the round trip of a host call that answers at once
// (the in-memory homeserver), per host call: the script yields, the Go
// work runs, the answer is converted and the script resumed. Through the
// engine with HostHonoursContext (the Go work on the caller's goroutine)
// and without it (a goroutine per host call), against two gopher-lua
// baselines doing the same Go work and conversion: a bare L.Yield
// resumed at once by the goroutine that owns the state, and the same with
// the Go work on a new goroutine posting its answer back on a channel.
func BenchmarkHostCall(b *testing.B) {
	for _, hc := range hostCalls {
		for _, mode := range []struct {
			name    string
			honours bool
		}{{"engine-inline", true}, {"engine-goroutine", false}} {
			b.Run(hc.name+"/"+mode.name, func(b *testing.B) {
				e := newEngine(b, modulesYAML("m.lua", 1, "timeout: 60s"), map[string]string{
					"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
						for i = 1, tonumber(ev.content.body) do
							if ` + hc.lua + ` == nil then error("no answer") end
						end
						return "NOT_SPAM"
					end } end }`,
				}, engine.Options{Host: benchHost(b), HostHonoursContext: mode.honours})
				ctx := context.Background()
				evs := map[int]*engine.Event{}
				hostCallLoop(b, func(n int) error {
					ev := evs[n]
					if ev == nil {
						ev = message("@alice:example.org", strconv.Itoa(n))
						evs[n] = ev
					}
					d, err := e.CheckEventForSpam(ctx, ev)
					if err == nil && !d.Allowed() {
						err = fmt.Errorf("%v", d)
					}
					return err
				})
			})
		}
		for _, post := range []bool{false, true} {
			name := "bare-yield"
			if post {
				name = "goroutine-post"
			}
			b.Run(hc.name+"/"+name, func(b *testing.B) {
				bare := newBareHost(b, hc.name, post)
				hostCallLoop(b, bare.run)
			})
		}
	}
}

// bareHost is the baseline of BenchmarkHostCall: a Lua function calling
// host(user) n times, where host yields to the Go side, which looks the
// user up in the same in-memory homeserver, converts the answer and
// resumes.
type bareHost struct {
	L    *lua.LState
	fn   *lua.LFunction
	host *memhost.Host
	kind string // "exists" or "profile"
	post bool   // do the Go work on a new goroutine and post the answer back
	ch   chan any
}

func newBareHost(tb testing.TB, kind string, post bool) *bareHost {
	L := lua.NewState()
	tb.Cleanup(L.Close)
	L.SetGlobal("host", L.NewFunction(func(L *lua.LState) int { return L.Yield(L.Get(1)) }))
	if err := L.DoString(`calls = function(n)
		for i = 1, n do
			if host("@alice:example.org") == nil then error("no answer") end
		end
		return "NOT_SPAM"
	end`); err != nil {
		tb.Fatal(err)
	}
	return &bareHost{L: L, fn: L.GetGlobal("calls").(*lua.LFunction),
		host: benchHost(tb), kind: kind, post: post, ch: make(chan any, 1)}
}

func (h *bareHost) lookup(ctx context.Context, user string) any {
	if h.kind == "exists" {
		id, _ := h.host.CheckUserExists(ctx, user)
		return id
	}
	p, _ := h.host.Profile(ctx, user)
	return p
}

func (h *bareHost) toLua(v any) lua.LValue {
	switch v := v.(type) {
	case string:
		if v == "" {
			return lua.LNil
		}
		return lua.LString(v)
	case *engine.Profile:
		if v == nil {
			return lua.LNil
		}
		t := h.L.CreateTable(0, 2)
		if v.DisplayName != "" {
			t.RawSetString("display_name", lua.LString(v.DisplayName))
		}
		if v.AvatarURL != "" {
			t.RawSetString("avatar_url", lua.LString(v.AvatarURL))
		}
		return t
	}
	return lua.LNil
}

// run does one call of n host calls, in a coroutine of its own (its
// cost is spread over the n calls).
func (h *bareHost) run(n int) error {
	ctx := context.Background()
	co, _ := h.L.NewThread()
	st, err, vals := h.L.Resume(co, h.fn, lua.LNumber(n))
	for err == nil && st == lua.ResumeYield {
		user := string(vals[0].(lua.LString))
		var answer any
		if h.post {
			go func() { h.ch <- h.lookup(ctx, user) }()
			answer = <-h.ch
		} else {
			answer = h.lookup(ctx, user)
		}
		st, err, vals = h.L.Resume(co, h.fn, h.toLua(answer))
	}
	if err != nil {
		return err
	}
	if len(vals) != 1 || vals[0] != lua.LString("NOT_SPAM") {
		return fmt.Errorf("bare host calls returned %v", vals)
	}
	return nil
}

// TestHostCallTwinsAgree: each side of BenchmarkHostCall gets an answer
// for alice and none for a user that does not exist.
func TestHostCallTwinsAgree(t *testing.T) {
	for _, hc := range hostCalls {
		for _, user := range []string{"@alice:example.org", "@nobody:example.org"} {
			want := user == "@alice:example.org"
			call := strings.Replace(hc.lua, "@alice:example.org", user, 1)
			e := newEngine(t, modulesYAML("m.lua", 1, ""), map[string]string{
				"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
					if ` + call + ` == nil then return "M_FORBIDDEN" end
					return "NOT_SPAM"
				end } end }`,
			}, engine.Options{Host: benchHost(t), HostHonoursContext: true})
			d, err := e.CheckEventForSpam(context.Background(), hamEvent())
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed() != want {
				t.Errorf("engine %s for %s: allowed=%v, want %v", hc.name, user, d.Allowed(), want)
			}
			for _, post := range []bool{false, true} {
				bare := newBareHost(t, hc.name, post)
				got := bare.toLua(bare.lookup(context.Background(), user)) != lua.LNil
				if got != want {
					t.Errorf("bare %s (post=%v) for %s: answer=%v, want %v", hc.name, post, user, got, want)
				}
			}
		}
		bare := newBareHost(t, hc.name, false)
		if err := bare.run(3); err != nil {
			t.Errorf("bare %s: %v", hc.name, err)
		}
	}
}

// BenchmarkChain: check_event_for_spam through chains of 1, 10 and 50
// modules (the same script, each its own module), reporting the cost per
// module; a per-module cost that grows with the chain is a scaling bug.
func BenchmarkChain(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("modules=%d", n), func(b *testing.B) {
			e := newEngine(b, modulesYAML("m.lua", n, ""), map[string]string{"m.lua": spamModule}, engine.Options{})
			ev := hamEvent()
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				d, err := e.CheckEventForSpam(ctx, ev)
				if err != nil || !d.Allowed() {
					b.Fatal(d, err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/float64(n), "ns/module")
		})
	}
}

// TestChainRunsEveryModule: in a chain of modules that all pass, the last
// one still sees the event (so BenchmarkChain's per-module figure counts
// every module).
func TestChainRunsEveryModule(t *testing.T) {
	const n = 10
	mods := map[string]string{"m.lua": spamModule, "last.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{
		check_event_for_spam = function(ev) return "M_FORBIDDEN" end } end }`}
	yaml := modulesYAML("m.lua", n-1, "") + "  - module: last.lua\n"
	e := newEngine(t, yaml, mods, engine.Options{})
	d, err := e.CheckEventForSpam(context.Background(), hamEvent())
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed() {
		t.Errorf("module %d of %d did not run: %v", n, n, d)
	}
}

// parallelCallers is how many goroutines BenchmarkParallel calls from.
const parallelCallers = 8

// BenchmarkParallel: check_event_for_spam from 8 goroutines at once, with
// the module in one Lua state (instances: 1) and in two (instances: 2).
// ns/op is wall time per call, so the throughput ratio is
// instances=1's ns/op over instances=2's.
func BenchmarkParallel(b *testing.B) {
	for _, inst := range []int{1, 2} {
		b.Run(fmt.Sprintf("instances=%d", inst), func(b *testing.B) {
			e := newEngine(b, modulesYAML("m.lua", 1, fmt.Sprintf("instances: %d", inst)),
				map[string]string{"m.lua": spamModule}, engine.Options{})
			ev := hamEvent()
			ctx := context.Background()
			procs := goruntime.GOMAXPROCS(0)
			b.SetParallelism((parallelCallers + procs - 1) / procs)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d, err := e.CheckEventForSpam(ctx, ev)
					if err != nil || !d.Allowed() {
						b.Error(d, err)
						return
					}
				}
			})
		})
	}
}

// memInUse is the Go heap and goroutine stacks in use after a full GC:
// Lua states live on the Go heap, coroutine stacks are Go slices, and a
// parked call also holds its caller's goroutine stack.
func memInUse() int64 {
	var m goruntime.MemStats
	goruntime.GC()
	goruntime.GC()
	goruntime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// memModules is how many modules BenchmarkModuleMemory loads.
const memModules = 500

// BenchmarkModuleMemory loads 500 small modules (one spam checker each)
// and reports the memory each holds: HeapInuse+StackInuse after a GC,
// loaded minus before, over 500. This counts each module's Lua state,
// its pooled worker coroutines and the engine's bookkeeping, but not
// memory the Go runtime keeps but does not use (that is in RSS), nor the
// script's source, which every module shares here.
func BenchmarkModuleMemory(b *testing.B) {
	files := map[string]string{"m.lua": spamModule}
	yaml := modulesYAML("m.lua", memModules, "")
	ev := hamEvent()
	var total int64
	for b.Loop() {
		before := memInUse()
		cfg, err := engine.ParseConfig([]byte(yaml), "bench.yaml")
		if err != nil {
			b.Fatal(err)
		}
		fsys := fstest.MapFS{"m.lua": &fstest.MapFile{Data: []byte(files["m.lua"])}}
		e, err := engine.New(context.Background(), cfg, engine.Options{FS: fsys, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		// One call through the chain, so each module has made its worker
		// coroutine, as a module in service has.
		if d, err := e.CheckEventForSpam(context.Background(), ev); err != nil || !d.Allowed() {
			b.Fatal(d, err)
		}
		total += memInUse() - before
		e.Close()
	}
	b.ReportMetric(float64(total)/float64(b.N)/memModules, "B/module")
}

// parkedCalls is how many calls BenchmarkParkedHostCall parks at once.
const parkedCalls = 1000

// BenchmarkParkedHostCall parks 1,000 calls of one module in api.sleep at
// once and reports the memory each holds (HeapInuse+StackInuse after a
// GC, parked minus before, over 1,000). That includes the calling
// goroutine's stack, which a homeserver pays for any waiting request:
// "goroutine" reports 1,000 goroutines blocked on a channel instead, the
// floor of that.
func BenchmarkParkedHostCall(b *testing.B) {
	const (
		sleep   = 1500 * time.Millisecond
		settled = 500 * time.Millisecond // all parked by then, or the run says so
		slack   = 100 * time.Millisecond // for a loaded machine's wake-up delays
	)
	b.Run("engine", func(b *testing.B) {
		e := newEngine(b, modulesYAML("m.lua", 1, "timeout: 30s"), map[string]string{
			"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
				api.sleep(tonumber(ev.content.body))
				return "NOT_SPAM"
			end } end }`,
		}, engine.Options{})
		ctx := context.Background()
		ev := message("@a:example.org", strconv.FormatFloat(sleep.Seconds(), 'f', -1, 64))
		var total int64
		for b.Loop() {
			before := memInUse()
			var wg sync.WaitGroup
			ends := make([]time.Time, parkedCalls)
			for i := range parkedCalls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := e.CheckEventForSpam(ctx, ev); err != nil {
						b.Error(err)
					}
					ends[i] = time.Now()
				}()
			}
			time.Sleep(settled)
			total += memInUse() - before
			read := time.Now()
			wg.Wait()
			// A call that ends well after read+sleep began its sleep
			// after memory was read: it was not counted as parked.
			late := 0
			for _, end := range ends {
				if end.After(read.Add(sleep + slack)) {
					late++
				}
			}
			if late > parkedCalls/100 {
				b.Fatalf("%d of %d calls were not parked %v after they began (machine too busy?)", late, parkedCalls, settled)
			}
		}
		b.ReportMetric(float64(total)/float64(b.N)/parkedCalls, "B/parked")
	})
	b.Run("goroutine", func(b *testing.B) {
		var total int64
		for b.Loop() {
			before := memInUse()
			release := make(chan struct{})
			var wg sync.WaitGroup
			for range parkedCalls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-release
				}()
			}
			total += memInUse() - before
			close(release)
			wg.Wait()
		}
		b.ReportMetric(float64(total)/float64(b.N)/parkedCalls, "B/parked")
	})
}

// TestPythonBaselineAgrees: the CPython checker of bench/compare.sh
// reaches the same verdicts as the Lua one.
func TestPythonBaselineAgrees(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: bench/compare.sh leaves the CPython baseline out too")
	}
	out, err := exec.Command(py, "python/spam_check.py", "--check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verdicts agree") {
		t.Errorf("python3 python/spam_check.py --check: %v\n%s", err, out)
	}
}
