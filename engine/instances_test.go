package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"

	"github.com/luahost/luahost/engine/storage"
)

// Several luahost instances behind one homeserver (docs/instances.md): which instance runs
// background tasks. Engines in one process stand for the instances here; tests/instances_test.go
// runs three `luahost serve` processes on a real Redis.

func TestInstanceConfig(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string // an error containing this; "" = valid
		runOn      string
		lease      time.Duration
	}{
		{"unset", "", "", "", DefaultBackgroundLease},
		{"pinned", "instance_name: w1\nrun_background_tasks_on: w2\n", "", "w2", DefaultBackgroundLease},
		{"any on redis", "run_background_tasks_on: any\nbackground_lease: 2s\nstorage: {backend: redis, url: redis://127.0.0.1:1/0}\n", "", "any", 2 * time.Second},
		{"lease in seconds", "background_lease: 30\n", "", "", 30 * time.Second},
		{"any on bolt", "run_background_tasks_on: any\nstorage: {backend: bolt}\n",
			"test.yaml:2: run_background_tasks_on: any elects one instance through a lease in a store every instance shares, but storage.backend is bolt", "", 0},
		{"any on memory", "storage: {backend: memory}\nrun_background_tasks_on: any\n", "test.yaml:3: run_background_tasks_on: any", "", 0},
		{"bad name", "run_background_tasks_on: \"w 1\"\n", `test.yaml:2: run_background_tasks_on must be an instance name (letters, digits, '_', '-', '.') or "any", got "w 1"`, "", 0},
		{"a list", "run_background_tasks_on: [a, b]\n", "run_background_tasks_on must be a single value", "", 0},
		{"short lease", "background_lease: 100ms\n", "test.yaml:2: background_lease must be from 1s to 10m0s, got 100ms", "", 0},
		{"not a duration", "background_lease: soon\n", `background_lease: "soon" is not a duration`, "", 0},
		{"reserved name", "instance_name: any\nrun_background_tasks_on: w1\n", `instance_name "any" is reserved`, "", 0},
		{"bad instance name", "instance_name: \"a/b\"\n", `instance_name "a/b" may only contain`, "", 0},
		{"misspelt", "run_background_task_on: any\n", `did you mean "run_background_tasks_on"?`, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte("server_name: x\n"+tc.yaml+"modules: []\n"), "test.yaml")
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Background.RunOn != tc.runOn || cfg.Background.Lease != tc.lease {
				t.Errorf("Background = %+v; want RunOn %q, Lease %v", cfg.Background, tc.runOn, tc.lease)
			}
		})
	}
}

// run_background_tasks_on: any needs a store that can hold a lease; without a storage:
// section the engine would use bolt or memory, and says so at start.
func TestAnyNeedsASharedStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store storage.Store
		want  string
	}{
		{"default store", nil, "test.yaml:2: run_background_tasks_on: any elects one instance through a lease in a store every instance shares, but api.store is bolt"},
		{"embedder's store", openTestStore(t, storage.Config{Backend: "memory"}), "but api.store is the embedder's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte("server_name: x\nrun_background_tasks_on: any\nmodules: []\n"), "test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Dir = t.TempDir()
			e, err := New(context.Background(), cfg, Options{Logger: quiet, Store: tc.store, FS: mapFS(nil)})
			if err == nil {
				e.Close()
				t.Fatal("New succeeded")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a ConfigError containing %q", err, tc.want)
			}
		})
	}
}

// bgModule records, in api.store, each background run with its instance and times, and
// (every run_on_all_instances tick) what api.should_run_background_tasks answers. Each run
// makes a few host calls so that it lasts a while and can be cut short.
const bgModule = `local M = {}
function M.new(config, api)
  local me = api.worker_name or "unnamed"
  api.store.set("init:" .. me, {should = api.should_run_background_tasks(), worker = api.worker_name or false})
  api.looping_background_call(function(step)
    local t0 = api.get_current_time_msec()
    for i = 1, 3 do api.sleep(0.002) end
    local n = api.store.incr("runs")
    api.store.set("run:" .. n, {i = me, t0 = t0, t1 = api.get_current_time_msec(), step = step})
  end, 10, 1)
  api.looping_background_call(function()
    api.store.incr("all:" .. me)
    api.store.set("should:" .. me, api.should_run_background_tasks())
  end, 10, {run_on_all_instances = true, desc = "probe"})
end
return M
`

type bgRun struct {
	I      string
	T0, T1 int64
	Step   int
}

// bgRig is several engines (instances) on one store.
type bgRig struct {
	t     *testing.T
	st    storage.Store
	ns    string // the module's name: its store namespace
	yaml  string
	store func(name string) storage.Store // the store an instance sees
	engs  map[string]*Engine
}

func newBGRig(t *testing.T, st storage.Store, config string, store func(string) storage.Store) *bgRig {
	ns := storeModName("bg")
	if store == nil {
		store = func(string) storage.Store { return st }
	}
	return &bgRig{t: t, st: st, ns: ns, store: store, engs: map[string]*Engine{},
		yaml: "server_name: " + ns + ".example.org\n" + config + "modules:\n  - module: bg.lua\n    name: " + ns + "\n"}
}

// start starts an instance named name ("" unnamed).
func (r *bgRig) start(name string) *Engine {
	r.t.Helper()
	cfg, err := ParseConfig([]byte(r.yaml), "test.yaml")
	if err != nil {
		r.t.Fatal(err)
	}
	cfg.InstanceName = name
	e, err := New(context.Background(), cfg, Options{Logger: quiet, Store: r.store(name), FS: mapFS(map[string]string{"bg.lua": bgModule})})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { e.Close() })
	r.engs[name] = e
	return e
}

func (r *bgRig) get(key string) (json.RawMessage, bool) {
	r.t.Helper()
	v, found, err := r.st.Get(context.Background(), r.ns, key)
	if err != nil {
		r.t.Fatal(err)
	}
	return v, found
}

func (r *bgRig) int(key string) int {
	v, found := r.get(key)
	if !found {
		return 0
	}
	var n int
	if err := json.Unmarshal(v, &n); err != nil {
		r.t.Fatalf("%s = %s: %v", key, v, err)
	}
	return n
}

func (r *bgRig) bool(key string) (bool, bool) {
	v, found := r.get(key)
	var b bool
	if found {
		json.Unmarshal(v, &b)
	}
	return b, found
}

// runs reads the recorded runs in order.
func (r *bgRig) runs() []bgRun {
	n := r.int("runs")
	var out []bgRun
	for i := 1; i <= n; i++ {
		v, found := r.get(fmt.Sprint("run:", i))
		if !found {
			continue // counted, not yet recorded
		}
		var run bgRun
		if err := json.Unmarshal(v, &run); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, run)
	}
	return out
}

// waitFor polls until cond holds (10 s at most).
func (r *bgRig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkRuns checks that runs of different instances never overlap and that the instance
// changes only at handovers (want: the instances in the order they ran).
func checkRuns(t *testing.T, runs []bgRun, want ...string) {
	t.Helper()
	var order []string
	for i, run := range runs {
		if run.Step != 1 {
			t.Errorf("run %d got %d as its argument; want 1", i+1, run.Step)
		}
		if len(order) == 0 || order[len(order)-1] != run.I {
			order = append(order, run.I)
		}
	}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("instances in the order they ran: %v; want %v", order, want)
	}
	byStart := append([]bgRun(nil), runs...)
	sort.Slice(byStart, func(i, j int) bool { return byStart[i].T0 < byStart[j].T0 })
	for i := 1; i < len(byStart); i++ {
		a, b := byStart[i-1], byStart[i]
		if a.I != b.I && b.T0 < a.T1 {
			t.Errorf("a run on %s (%d-%d ms) overlaps a run on %s (%d-%d ms)", a.I, a.T0, a.T1, b.I, b.T0, b.T1)
		}
	}
}

// run_background_tasks_on unset, or naming an instance: who runs the looping call, what
// should_run_background_tasks and worker_name say, and that run_on_all_instances runs
// everywhere.
func TestPinnedBackgroundTasks(t *testing.T) {
	cases := []struct {
		name, config string
		instance     string
		runs         bool
	}{
		{"single instance, unnamed", "", "", true},
		{"named, run_background_tasks_on unset", "", "w1", true},
		{"named here", "run_background_tasks_on: w1\n", "w1", true},
		{"named elsewhere", "run_background_tasks_on: w2\n", "w1", false},
		{"unnamed, named elsewhere", "run_background_tasks_on: w2\n", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newBGRig(t, openTestStore(t, storage.Config{Backend: "memory"}), tc.config, nil)
			e := r.start(tc.instance)
			me := tc.instance
			if me == "" {
				me = "unnamed"
			}
			// The all-instances probe ticks at the same interval as the gated loop: after
			// five of its ticks the gated loop would have run too, if it may.
			r.waitFor("five all-instances ticks", func() bool { return r.int("all:"+me) >= 5 })
			if got := len(r.runs()) > 0; got != tc.runs {
				t.Errorf("the looping call ran: %v, want %v", got, tc.runs)
			}
			if should, _ := r.bool("should:" + me); should != tc.runs {
				t.Errorf("should_run_background_tasks() = %v, want %v", should, tc.runs)
			}
			var init struct {
				Should bool
				Worker any
			}
			v, _ := r.get("init:" + me)
			json.Unmarshal(v, &init)
			wantWorker := any(false) // nil in Lua: stored as false by the module
			if tc.instance != "" {
				wantWorker = tc.instance
			}
			if init.Should != tc.runs || init.Worker != wantWorker {
				t.Errorf("in the constructor: should_run_background_tasks() = %v, worker_name = %v; want %v, %v", init.Should, init.Worker, tc.runs, wantWorker)
			}
			st := e.Background()
			if st.Running != tc.runs || st.Instance != tc.instance {
				t.Errorf("Background() = %+v; want Running %v, Instance %q", st, tc.runs, tc.instance)
			}
		})
	}
}

// sharedLeases is an in-process storage.Leaser for engines standing for instances: one lease
// table, and per instance a switch that cuts it off (a network partition).
type sharedLeases struct {
	mu     sync.Mutex
	holder map[string]string
	expiry map[string]time.Time
}

type leasingStore struct {
	storage.Store
	leases *sharedLeases
	cut    atomic.Bool
}

var errPartitioned = errors.New("partitioned from the lease store")

func (s *leasingStore) Lease(ctx context.Context, name, holder string, ttl time.Duration) (string, time.Duration, error) {
	if err := storage.CheckLease(ctx, name, holder, ttl); err != nil {
		return "", 0, err
	}
	if s.cut.Load() {
		return "", 0, storage.Unavailable(errPartitioned)
	}
	l := s.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if cur := l.holder[name]; cur == "" || cur == holder || !now.Before(l.expiry[name]) {
		l.holder[name], l.expiry[name] = holder, now.Add(ttl)
	}
	return l.holder[name], l.expiry[name].Sub(now), nil
}

func (s *leasingStore) Release(ctx context.Context, name, holder string) error {
	if s.cut.Load() {
		return storage.Unavailable(errPartitioned)
	}
	l := s.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder[name] == holder {
		delete(l.holder, name)
	}
	return nil
}

// electionStores returns the stores to run the election tests on: an in-process lease table
// over the memory backend (always), and Redis when the test server is there. cut, when
// non-nil, partitions an instance from the leases.
func electionStores(t *testing.T) map[string]func(t *testing.T) (st storage.Store, perInstance func(string) storage.Store, cut func(string)) {
	return map[string]func(t *testing.T) (storage.Store, func(string) storage.Store, func(string)){
		"in-process": func(t *testing.T) (storage.Store, func(string) storage.Store, func(string)) {
			mem := openTestStore(t, storage.Config{Backend: "memory"})
			leases := &sharedLeases{holder: map[string]string{}, expiry: map[string]time.Time{}}
			var mu sync.Mutex
			views := map[string]*leasingStore{}
			view := func(name string) *leasingStore {
				mu.Lock()
				defer mu.Unlock()
				if views[name] == nil {
					views[name] = &leasingStore{Store: mem, leases: leases}
				}
				return views[name]
			}
			return mem, func(name string) storage.Store { return view(name) }, func(name string) { view(name).cut.Store(true) }
		},
		"redis": func(t *testing.T) (storage.Store, func(string) storage.Store, func(string)) {
			url := storeRedisURL(t)
			cleanupStoreRedis(t)
			st := openTestStore(t, storage.Config{Backend: "redis", URL: url})
			return st, func(string) storage.Store { return openTestStore(t, storage.Config{Backend: "redis", URL: url}) }, nil
		},
	}
}

// run_background_tasks_on: any: the first instance takes the lease and alone runs the
// looping call; when it shuts down it releases the lease and the second takes over at once.
func TestElectedInstanceHandsOverOnClose(t *testing.T) {
	for name, open := range electionStores(t) {
		t.Run(name, func(t *testing.T) {
			st, perInstance, _ := open(t)
			r := newBGRig(t, st, "run_background_tasks_on: any\nbackground_lease: 1s\n", perInstance)
			a := r.start("a")
			b := r.start("b")
			r.waitFor("five runs", func() bool { return len(r.runs()) >= 5 })
			r.waitFor("b's probe", func() bool { _, ok := r.bool("should:b"); return ok })
			if sa, _ := r.bool("should:a"); !sa {
				t.Error("a: should_run_background_tasks() = false; a holds the lease")
			}
			if sb, _ := r.bool("should:b"); sb {
				t.Error("b: should_run_background_tasks() = true; a holds the lease")
			}
			if got := a.Background(); !got.Running || got.Holder != "a" || got.RunOn != "any" || got.LeaseUntil.IsZero() {
				t.Errorf("a.Background() = %+v; want running, holder a, a lease end", got)
			}
			if got := b.Background(); got.Running || got.Holder != "a" {
				t.Errorf("b.Background() = %+v; want not running, holder a", got)
			}
			a.Close()
			closed := len(r.runs())
			r.waitFor("five runs on b", func() bool { return len(r.runs()) >= closed+5 })
			checkRuns(t, r.runs(), "a", "b")
			if got := b.Background(); !got.Running || got.Holder != "b" {
				t.Errorf("b.Background() after a closed = %+v; want running, holder b", got)
			}
		})
	}
}

// An instance cut off from the lease store stops its background tasks, a run in flight
// included, before another instance starts them: runs never overlap across the handover.
func TestPartitionedInstanceStopsBeforeTakeover(t *testing.T) {
	st, perInstance, cut := electionStores(t)["in-process"](t)
	r := newBGRig(t, st, "run_background_tasks_on: any\nbackground_lease: 1s\n", perInstance)
	a := r.start("a")
	r.start("b")
	r.waitFor("five runs", func() bool { return len(r.runs()) >= 5 })
	cut("a")
	r.waitFor("five runs on b", func() bool {
		runs := r.runs()
		n := 0
		for _, run := range runs {
			if run.I == "b" {
				n++
			}
		}
		return n >= 5
	})
	checkRuns(t, r.runs(), "a", "b")
	if got := a.Background(); got.Running || got.LeaseError == nil {
		t.Errorf("a.Background() = %+v; want not running, with the store's error", got)
	}
}

// The options table Synapse's keyword arguments become: taken from the last argument only
// when it is a non-empty table of option names; anything else reaches fn. On an instance
// that does not run background tasks, what the constructor starts does not run unless
// run_on_all_instances says so; what a callback starts later runs where it was started.
func TestBackgroundCallOptions(t *testing.T) {
	st := openTestStore(t, storage.Config{Backend: "memory"})
	cfg, err := ParseConfig([]byte("server_name: example.org\ninstance_name: w1\nrun_background_tasks_on: w2\nmodules:\n  - module: m.lua\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), cfg, Options{Logger: quiet, Store: st, FS: mapFS(map[string]string{"m.lua": `local M = {}
local got = {}
local function record(name) return function(...) got[name] = {select("#", ...), ...} end end
function M.new(config, api)
  local all = {run_on_all_instances = true}
  api.delayed_background_call(1, record("opts"), "x", all)
  api.delayed_background_call(1, record("plain"), "x", {1, 2}, all)
  api.delayed_background_call(1, record("empty"), {}, all)
  api.delayed_background_call(1, record("other keys"), {desc = "d", extra = 1}, all)
  api.delayed_background_call(1, record("escaped"), {desc = "for fn"}, all)
  api.delayed_background_call(1, record("gated"), "x")
  api.delayed_background_call(1, record("gated, explicit"), "x", {run_on_all_instances = false})
  api.delayed_background_call(1, record("meta"), setmetatable({desc = "m"}, {}), all)
  api.run_as_background_process("proc", record("process"), "y")
  api.run_as_background_process("proc", record("process, all"), "y", all)
  -- Started later, from a callback (this one runs everywhere): they run on this instance.
  local started = false
  api.looping_background_call(function()
    if started then return end
    started = true
    api.delayed_background_call(1, record("later"), "z")
    api.run_as_background_process("later", record("process later"), "z")
  end, 10, all)
  api.looping_background_call(record("loop"), 10)
  local ok, err = pcall(function() api.delayed_background_call(1, function() end, {run_on_all_instances = "yes"}) end)
  got.bad1 = tostring(err)
  ok, err = pcall(function() api.looping_background_call(function() end, 10, {desc = 5}) end)
  got.bad2 = tostring(err)
  -- Reported once every other delayed call is due (the gated ones too, which must not run).
  api.delayed_background_call(50, function()
    local function show(name)
      local r = got[name]
      if r == nil then return name .. "=-" end
      local parts = {}
      for i = 2, r[1] + 1 do
        local v = r[i]
        if type(v) == "table" then
          local keys = {}
          for k in pairs(v) do keys[#keys + 1] = tostring(k) end
          table.sort(keys)
          v = "{" .. table.concat(keys, ",") .. "}"
        end
        parts[#parts + 1] = tostring(v)
      end
      return name .. "=" .. r[1] .. ":" .. table.concat(parts, " ")
    end
    local out = {}
    for _, n in ipairs({"opts", "plain", "empty", "other keys", "escaped", "gated", "gated, explicit", "meta",
                        "process", "process, all", "later", "process later", "loop"}) do
      out[#out + 1] = show(n)
    end
    out[#out + 1] = got.bad1
    out[#out + 1] = got.bad2
    api.store.set("result", table.concat(out, "\n"))
  end, all)
end
return M`})})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, found, err := st.Get(context.Background(), "m", "result")
		if err != nil {
			t.Fatal(err)
		}
		if found {
			json.Unmarshal(v, &got)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delayed calls did not run")
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := []string{
		"opts=1:x",
		"plain=2:x {1,2}",
		"empty=1:{}",
		"other keys=1:{desc,extra}",
		"escaped=1:{desc}",
		"gated=-",
		"gated, explicit=-",
		"meta=1:{desc}",
		"process=-",
		"process, all=1:y",
		"later=1:z",
		"process later=1:z",
		"loop=-",
		"m.lua:25: bad argument #3 to delayed_background_call (options: run_on_all_instances must be a boolean, got string)",
		"m.lua:27: bad argument #3 to looping_background_call (options: desc must be a string, got number)",
	}
	if got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// A background call still running when its instance loses the lease is interrupted then
// (its context ends), not left to finish alongside the new holder's.
func TestLeaseLossInterruptsARunningTask(t *testing.T) {
	st, perInstance, cut := electionStores(t)["in-process"](t)
	ns := storeModName("long")
	yaml := "server_name: " + ns + ".example.org\nrun_background_tasks_on: any\nbackground_lease: 1s\nmodules:\n  - module: long.lua\n    name: " + ns + "\n    timeout: 60s\n"
	src := `local M = {}
function M.new(config, api)
  api.looping_background_call(function()
    -- A task that would run for a minute: a heartbeat every 10 ms.
    for i = 1, 6000 do
      local n = api.store.incr("beats")
      api.store.set("beat:" .. n, {i = api.worker_name, t = api.get_current_time_msec()})
      api.sleep(0.01)
    end
  end, 10)
end
return M`
	var engs []*Engine
	for _, name := range []string{"a", "b"} {
		cfg, err := ParseConfig([]byte(yaml), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		cfg.InstanceName = name
		e, err := New(context.Background(), cfg, Options{Logger: quiet, Store: perInstance(name), FS: mapFS(map[string]string{"long.lua": src})})
		if err != nil {
			t.Fatal(err)
		}
		engs = append(engs, e)
	}
	defer func() {
		for _, e := range engs {
			e.Close()
		}
	}()
	ctx := context.Background()
	count := func() int64 {
		n, err := st.Incr(ctx, ns, "beats", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	type beat struct {
		I string
		T int64
	}
	beats := func() []beat {
		var out []beat
		for i := int64(1); i <= count(); i++ {
			v, found, err := st.Get(ctx, ns, fmt.Sprint("beat:", i))
			if err != nil {
				t.Fatal(err)
			}
			if found {
				var b beat
				json.Unmarshal(v, &b)
				out = append(out, b)
			}
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() < 10 {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeats from a")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cut("a")
	for {
		bs := beats()
		if len(bs) > 0 && bs[len(bs)-1].I == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b did not take over")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a's task, if it were still running, would beat meanwhile
	bs := beats()
	firstB := -1
	for i, b := range bs {
		if b.I == "b" && firstB < 0 {
			firstB = i
		}
		if firstB >= 0 && b.I == "a" {
			t.Fatalf("a beat at %d ms, after b's first beat at %d ms: a's task was not interrupted when a lost the lease", b.T, bs[firstB].T)
		}
	}
	if firstB < 1 || bs[firstB].T-bs[firstB-1].T < 100 {
		t.Errorf("b's first beat came %d ms after a's last; want at least the margin (200 ms for a 1s lease)", bs[firstB].T-bs[firstB-1].T)
	}
}
