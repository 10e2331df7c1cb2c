package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"

	"github.com/redis/go-redis/v9"

	"github.com/luahost/luahost/engine/storage"
)

// api.store through the engine: the same behavioural table runs against
// every backend (memory, bolt, and redis when LUAHOST_TEST_REDIS_URL is
// set), driving Lua modules through check_event_for_spam.

// storeRun prefixes every module name (the store namespace) of this test
// run, so runs sharing a Redis server do not see each other's keys.
var storeRun = fmt.Sprintf("t%x", time.Now().UnixNano())

var storeModSeq atomic.Int64

// storeModName is a fresh module name for one engine's module.
func storeModName(what string) string {
	return fmt.Sprintf("%s_%s_%d", storeRun, what, storeModSeq.Add(1))
}

// storeBackend opens stores of one backend. open returns a new store over
// the same data each time it is called within one test (a reopened bolt
// file, a new Redis client); for memory it is a fresh store.
type storeBackend struct {
	name string
	// persistent: a store opened again sees the data of the earlier one.
	persistent bool
	// open is called once per test to get the opener of that test.
	open func(t testing.TB) func(t testing.TB) storage.Store
}

func storeBackends() []storeBackend {
	return []storeBackend{
		{"memory", false, func(t testing.TB) func(t testing.TB) storage.Store {
			return func(t testing.TB) storage.Store { return openTestStore(t, storage.Config{Backend: "memory"}) }
		}},
		{"bolt", true, func(t testing.TB) func(t testing.TB) storage.Store {
			path := filepath.Join(t.TempDir(), "storage.db")
			return func(t testing.TB) storage.Store {
				return openTestStore(t, storage.Config{Backend: "bolt", Path: path})
			}
		}},
		{"redis", true, func(t testing.TB) func(t testing.TB) storage.Store {
			url := storeRedisURL(t)
			return func(t testing.TB) storage.Store { return openTestStore(t, storage.Config{Backend: "redis", URL: url}) }
		}},
	}
}

// openTestStore opens a store that is closed when the test ends (after
// the engines made later, whose cleanups run first).
func openTestStore(t testing.TB, cfg storage.Config) storage.Store {
	t.Helper()
	st, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var storeRedisCleanup sync.Once

// storeRedisURL is the test Redis server: skipped with a message when
// there is none, except in CI, which must run the Redis tests.
func storeRedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("LUAHOST_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("LUAHOST_TEST_REDIS_URL not set, and CI must run the Redis tests: eval \"$(bash .ci/redis.sh start)\"")
		}
		t.Skip("LUAHOST_TEST_REDIS_URL not set; start a server with: eval \"$(bash .ci/redis.sh start)\"")
	}
	return u
}

// cleanupStoreRedis deletes this run's keys when the test ends.
func cleanupStoreRedis(t testing.TB) {
	u := os.Getenv("LUAHOST_TEST_REDIS_URL")
	if u == "" {
		return
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := redis.NewClient(opts)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, "luahost:"+storeRun+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			c.Del(ctx, keys[:n]...)
			keys = keys[n:]
		}
	})
}

// storeModule is one module of a test engine.
type storeModule struct {
	name, src, config string // config: YAML flow mapping, or ""
}

// newStoreEngine starts an engine over st (nil: the config's storage:
// section decides) with the given modules; extraYAML goes before modules:.
func newStoreEngine(t testing.TB, st storage.Store, log *slog.Logger, extraYAML string, mods ...storeModule) *Engine {
	t.Helper()
	var y strings.Builder
	y.WriteString("server_name: example.org\n" + extraYAML + "modules:\n")
	files := map[string]string{}
	for _, m := range mods {
		file := m.name + ".lua"
		files[file] = m.src
		fmt.Fprintf(&y, "  - module: %s\n    timeout: 20s\n", file)
		if m.config != "" {
			fmt.Fprintf(&y, "    config: %s\n", m.config)
		}
	}
	cfg, err := ParseConfig([]byte(y.String()), "test.yaml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y.String())
	}
	if log == nil {
		log = quiet
	}
	e, err := New(context.Background(), cfg, Options{FS: mapFS(files), Store: st, Logger: log})
	if e != nil {
		t.Cleanup(func() { e.Close() })
	}
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return e
}

// storeSuite is a module whose spam check runs the case named by the
// event's body; assert fails the call.
const storeSuite = `local json = require("json")
local M = {}

local function deq(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not deq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function fails(want, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "no error; want one containing " .. want)
  err = tostring(err)
  assert(err:find(want, 1, true), "error " .. err .. " does not contain " .. want)
  return err
end

function M.new(config, api)
  local s = api.store
  local cases = {}

  function cases.roundtrip(ev)
    local v = {
      name = "x", n = 42, f = 3.25, neg = -7, big = 2^53, yes = true, no = false,
      nested = { a = { b = { c = "deep" } }, list = { 1, "two", { three = 3 }, { 4, { 5 } } } },
      arr = { "a", "b" }, empty_arr = json.array({}), empty_obj = {}, null = api.null,
      uni = "héllo ☃ \"quoted\" \\ \n tab\t",
    }
    s.set("v", v)
    local got = s.get("v")
    assert(deq(got, v), "round trip: " .. json.encode(got))
    assert(json.encode(got.empty_arr) == "[]", "empty array came back as " .. json.encode(got.empty_arr))
    assert(json.encode(got.empty_obj) == "{}", "empty object came back as " .. json.encode(got.empty_obj))
    assert(json.encode(got.nested.list) == '[1,"two",{"three":3},[4,[5]]]', json.encode(got.nested.list))
    assert(got.null == api.null and got.null == json.null, "null: " .. tostring(got.null))
    local scalars = { 0, 1, -1, 0.5, -2.75, 1e300, 2^53, "", "text", true, false }
    for i, x in ipairs(scalars) do
      s.set("scalar", x)
      local g = s.get("scalar")
      assert(g == x and type(g) == type(x), "scalar " .. i .. ": " .. tostring(g) .. " ~= " .. tostring(x))
    end
    s.set("null", api.null)
    assert(s.get("null") == api.null, "api.null came back as " .. tostring(s.get("null")))
    s.set("ea", json.array({}))
    assert(json.encode(s.get("ea")) == "[]", "empty array at top level")
    s.set("v", "replaced")
    assert(s.get("v") == "replaced", "set replaces")
  end

  function cases.missing(ev)
    assert(s.get("no such key") == nil, "missing key")
    assert(select("#", s.get("no such key")) == 1, "one result")
  end

  function cases.delete(ev)
    s.set("d", { 1 })
    assert(s.get("d") ~= nil)
    s.delete("d")
    assert(s.get("d") == nil, "deleted key reads nil")
    s.delete("d") -- missing: not an error
    s.delete("never there")
  end

  function cases.incr(ev)
    assert(s.incr("c") == 1, "first incr")
    assert(s.incr("c") == 2, "second incr")
    assert(s.incr("c", 5) == 7, "incr by 5")
    assert(s.incr("c", -10) == -3, "incr by -10")
    assert(s.incr("c", 0) == -3, "incr by 0")
    assert(s.get("c") == -3, "get after incr")
    s.set("i", 5)
    assert(s.incr("i") == 6, "incr a set integer")
    assert(s.incr("nil_by", nil, 60) == 1, "by nil defaults to 1")
    s.set("str", "x")
    fails("not an integer", s.incr, "str")
    s.set("tbl", { 1 })
    fails("not an integer", s.incr, "tbl")
    s.set("float", 1.5)
    fails("not an integer", s.incr, "float")
    assert(s.get("str") == "x", "failed incr leaves the value")
    assert(s.incr("o", 2^62) == 2^62)
    fails("overflow", s.incr, "o", 2^62)
    assert(s.incr("o", -(2^62)) == 0)
  end

  function cases.ttl_start(ev)
    s.set("t", "v", 1)
    s.set("forever", "v", 1)
    s.set("forever", "v2") -- no ttl: clears the expiry
    assert(s.incr("tc", 1, 0.9) == 1)
    assert(s.incr("tc", 1, 100) == 2) -- keeps the first expiry
    s.set("long", "v", 3600)
    assert(s.get("t") == "v", "before expiry")
    assert(deq(s.list("t"), { "t", "tc" }), "list before expiry")
  end

  function cases.ttl_check(ev)
    assert(s.get("t") == nil, "expired key reads nil: " .. tostring(s.get("t")))
    assert(s.get("tc") == nil, "expired counter reads nil")
    assert(s.get("forever") == "v2", "set without ttl clears the expiry")
    assert(s.get("long") == "v", "long ttl")
    assert(deq(s.list(""), { "forever", "long" }), "list skips expired keys: " .. json.encode(s.list("")))
    assert(s.incr("tc", 1, 0.3) == 1, "expired counter starts again")
  end

  function cases.list(ev)
    for _, k in ipairs({ "b:2", "a:2", "a:1", "invites:@alice:example.org", "a", "a/b", "b:1", "ä" }) do
      s.set(k, 1)
    end
    local got = s.list("a:")
    assert(json.encode(got) == '["a:1","a:2"]', "list a: " .. json.encode(got))
    got = s.list("")
    assert(json.encode(got) == '["a","a/b","a:1","a:2","b:1","b:2","invites:@alice:example.org","ä"]', "list all: " .. json.encode(got))
    assert(json.encode(s.list()) == json.encode(got), "list() is list('')")
    got = s.list("zzz")
    assert(type(got) == "table" and #got == 0 and json.encode(got) == "[]", "empty list: " .. json.encode(got))
    assert(json.encode(s.list("invites:")) == '["invites:@alice:example.org"]')
  end

  function cases.colon(ev)
    s:set("c", { 1, 2 })
    assert(deq(s:get("c"), { 1, 2 }), "colon get")
    assert(s:incr("n", 2) == 2, "colon incr")
    assert(json.encode(s:list("")) == '["c","n"]', "colon list")
    s:delete("c")
    assert(s:get("c") == nil, "colon delete")
    s.set("k", 1, 60)
    s:set("k", 2, 60)
    assert(api.store.get("k") == 2)
  end

  function cases.args(ev)
    fails("store.set: bad argument #2 (value): cannot encode a function value", s.set, "k", function() end)
    local err = fails("store.set: bad argument #2 (value): cannot encode a function value",
      function() s.set("k", function() end) end)
    assert(err:find("^[^ ]+%.lua:%d+: store%.set: "), "argument errors point at the script: " .. err)
    local cyc = {}
    cyc.self = cyc
    fails("store.set: bad argument #2 (value)", s.set, "k", cyc)
    fails("store.set: bad argument #2 (value): a value expected, got nil", s.set, "k", nil)
    fails("store.set: bad argument #2 (value): a value expected, got nil", s.set, "k")
    fails("store.get: bad argument #1 (key): string expected, got number", s.get, 5)
    fails("store.get: bad argument #1 (key): string expected, got nil", s.get)
    fails("store.get: bad argument #1 (key): the key is empty", s.get, "")
    fails("store.delete: bad argument #1 (key): the key is empty", s.delete, "")
    fails("store.incr: bad argument #1 (key): the key is empty", s.incr, "")
    fails("at most 4096", s.set, string.rep("k", 4097), 1)
    s.set(string.rep("k", 4096), 1)
    assert(s.get(string.rep("k", 4096)) == 1, "4096-byte key")
    fails("store.set: bad argument #3 (ttl_seconds): a positive number of seconds expected, got 0", s.set, "k", 1, 0)
    fails("store.set: bad argument #3 (ttl_seconds): a positive number of seconds expected, got -1", s.set, "k", 1, -1)
    fails("store.set: bad argument #3 (ttl_seconds): a positive number of seconds expected", s.set, "k", 1, 0/0)
    fails("store.set: bad argument #3 (ttl_seconds): a positive number of seconds expected", s.set, "k", 1, 1/0)
    fails("store.set: bad argument #3 (ttl_seconds): number expected, got string", s.set, "k", 1, "60")
    fails("store.incr: bad argument #2 (by): integer expected, got 1.5", s.incr, "k", 1.5)
    fails("store.incr: bad argument #2 (by): integer expected, got string", s.incr, "k", "1")
    fails("store.incr: bad argument #2 (by): integer expected", s.incr, "k", 2^63)
    fails("store.incr: bad argument #3 (ttl_seconds)", s.incr, "k", 1, -5)
    fails("store.list: bad argument #1 (prefix): string expected, got number", s.list, 1)
    assert(s.get("k") == nil, "nothing was written by the failed calls")
  end

  function cases.get_raw(ev)
    s.get("raw")
  end

  function cases.count(ev)
    local n = s.incr("count")
    assert(n == ev.content.want, "count: got " .. tostring(n) .. ", want " .. tostring(ev.content.want))
  end

  function cases.bump(ev)
    s.incr("hits")
  end

  function cases.get_hits(ev)
    assert(s.get("hits") == ev.content.want, "hits: " .. tostring(s.get("hits")))
  end

  function cases.isolation(ev)
    local prev = s.get("shared")
    assert(prev == nil or prev == config.me, config.me .. " saw " .. tostring(prev))
    s.set("shared", config.me)
    local n = s.incr("n")
    assert(n == ev.content.want, config.me .. ": n = " .. n)
    assert(json.encode(s.list("")) == '["n","shared"]', json.encode(s.list("")))
  end

  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
    local case = cases[ev.content.body]
    assert(case, "no case " .. tostring(ev.content.body))
    case(ev)
    return api.NOT_SPAM
  end }
end
return M
`

// runCase runs the case named body (want goes to ev.content.want).
func runCase(t testing.TB, e *Engine, body string, want ...any) {
	t.Helper()
	content := map[string]any{"body": body}
	if len(want) > 0 {
		content["want"] = want[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := e.CheckEventForSpam(ctx, &Event{Type: "m.room.message", Sender: "@a:example.org", Content: content})
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if !d.Allowed() {
		t.Fatalf("%s: %+v", body, d)
	}
}

func goGet(t testing.TB, st storage.Store, ns, key string) (string, bool) {
	t.Helper()
	v, found, err := st.Get(context.Background(), ns, key)
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", ns, key, err)
	}
	return string(v), found
}

func TestStore(t *testing.T) {
	cleanupStoreRedis(t)
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			if b.name == "redis" {
				storeRedisURL(t)
			}
			// One store (fresh data) and engine per case.
			engine := func(t *testing.T) (*Engine, storage.Store, string) {
				st := b.open(t)(t)
				name := storeModName("store")
				return newStoreEngine(t, st, nil, "", storeModule{name, storeSuite, ""}), st, name
			}
			for _, c := range []string{"roundtrip", "missing", "delete", "incr", "list", "colon", "args"} {
				t.Run(c, func(t *testing.T) {
					t.Parallel()
					e, _, _ := engine(t)
					runCase(t, e, c)
				})
			}
			t.Run("stored_as_json", func(t *testing.T) {
				t.Parallel()
				e, st, ns := engine(t)
				runCase(t, e, "roundtrip")
				runCase(t, e, "incr")
				if v, _ := goGet(t, st, ns, "v"); v != `"replaced"` {
					t.Errorf("v is stored as %s", v)
				}
				if v, _ := goGet(t, st, ns, "c"); v != `-3` {
					t.Errorf("counter is stored as %s", v)
				}
				if v, _ := goGet(t, st, ns, "str"); v != `"x"` {
					t.Errorf("str is stored as %s", v)
				}
				// A value that is not JSON (written by something else) is an
				// error at the script's line, not a crash.
				if err := st.Set(context.Background(), ns, "raw", []byte("not json"), 0); err != nil {
					t.Fatal(err)
				}
				err := callSpam(t, e, "get_raw")
				if err == nil || !strings.Contains(err.Error(), `.lua:`) ||
					!strings.Contains(err.Error(), `store.get: the value at key "raw" is not JSON`) {
					t.Errorf("non-JSON value: %v", err)
				}
			})
			t.Run("ttl", func(t *testing.T) {
				t.Parallel()
				e, _, _ := engine(t)
				runCase(t, e, "ttl_start")
				time.Sleep(1200 * time.Millisecond)
				runCase(t, e, "ttl_check")
			})
			t.Run("isolation", func(t *testing.T) {
				t.Parallel()
				st := b.open(t)(t)
				a, b := storeModName("a"), storeModName("b")
				e := newStoreEngine(t, st, nil, "",
					storeModule{a, storeSuite, "{me: a}"}, storeModule{b, storeSuite, "{me: b}"})
				runCase(t, e, "isolation", 1)
				runCase(t, e, "isolation", 2)
				for ns, want := range map[string]string{a: `"a"`, b: `"b"`} {
					if v, _ := goGet(t, st, ns, "shared"); v != want {
						t.Errorf("%s: shared = %s, want %s", ns, v, want)
					}
					if v, _ := goGet(t, st, ns, "n"); v != "2" {
						t.Errorf("%s: n = %s, want 2", ns, v)
					}
				}
			})
			t.Run("concurrent_incr", func(t *testing.T) {
				t.Parallel()
				e, st, ns := engine(t)
				concurrentBumps(t, []*Engine{e})
				if v, _ := goGet(t, st, ns, "hits"); v != "200" {
					t.Fatalf("hits = %s after 200 concurrent increments", v)
				}
				runCase(t, e, "get_hits", 200)
			})
			t.Run("restart", func(t *testing.T) {
				if !b.persistent {
					t.Skip(b.name + " does not survive a restart")
				}
				t.Parallel()
				name := storeModName("restart")
				open := b.open(t)
				for i := 1; i <= 3; i++ {
					// A new store and engine each time, as after a restart.
					st := open(t)
					e := newStoreEngine(t, st, nil, "", storeModule{name, storeSuite, ""})
					runCase(t, e, "count", 2*i-1)
					runCase(t, e, "count", 2*i)
					e.Close()
					st.Close()
				}
			})
		})
	}
}

// callSpam runs a case and returns its error.
func callSpam(t testing.TB, e *Engine, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.CheckEventForSpam(ctx, &Event{Type: "m.room.message", Sender: "@a:example.org",
		Content: map[string]any{"body": body}})
	return err
}

// concurrentBumps makes 200 increments from 8 goroutines of 25 calls,
// spread over the engines in turn.
func concurrentBumps(t *testing.T, engines []*Engine) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if err := callSpam(t, engines[(g+i)%len(engines)], "bump"); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Two luahost processes (two engines with their own Redis clients) share
// one counter.
func TestStoreRedisTwoEngines(t *testing.T) {
	url := storeRedisURL(t)
	cleanupStoreRedis(t)
	name := storeModName("shared")
	st1 := openTestStore(t, storage.Config{Backend: "redis", URL: url})
	st2 := openTestStore(t, storage.Config{Backend: "redis", URL: url})
	e1 := newStoreEngine(t, st1, nil, "", storeModule{name, storeSuite, ""})
	e2 := newStoreEngine(t, st2, nil, "", storeModule{name, storeSuite, ""})
	concurrentBumps(t, []*Engine{e1, e2})
	for _, st := range []storage.Store{st1, st2} {
		if v, _ := goGet(t, st, name, "hits"); v != "200" {
			t.Fatalf("hits = %s after 200 increments over two engines", v)
		}
	}
	runCase(t, e1, "get_hits", 200)
	runCase(t, e2, "get_hits", 200)
}

// The default store: bolt under data_dir, opened by the engine on first
// use and closed with it; counters survive a restart.
func TestStoreBoltDataDirSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	name := storeModName("datadir")
	for i := 1; i <= 2; i++ {
		e := newStoreEngine(t, nil, nil, fmt.Sprintf("data_dir: %q\n", dir), storeModule{name, storeSuite, ""})
		runCase(t, e, "count", 2*i-1)
		runCase(t, e, "count", 2*i)
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, storage.DefaultFile)); err != nil {
			t.Fatal(err)
		}
	}
}

// flakyStore is a Store whose methods fail like a closed store while down.
type flakyStore struct {
	storage.Store
	down atomic.Bool
}

func (f *flakyStore) err(op string) error {
	return fmt.Errorf("storage: flaky %s: %w", op, storage.ErrClosed)
}

func (f *flakyStore) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if f.down.Load() {
		return nil, false, f.err("get")
	}
	return f.Store.Get(ctx, ns, key)
}

func (f *flakyStore) Set(ctx context.Context, ns, key string, v []byte, ttl time.Duration) error {
	if f.down.Load() {
		return f.err("set")
	}
	return f.Store.Set(ctx, ns, key, v, ttl)
}

func (f *flakyStore) Delete(ctx context.Context, ns, key string) error {
	if f.down.Load() {
		return f.err("delete")
	}
	return f.Store.Delete(ctx, ns, key)
}

func (f *flakyStore) Incr(ctx context.Context, ns, key string, by int64, ttl time.Duration) (int64, error) {
	if f.down.Load() {
		return 0, f.err("incr")
	}
	return f.Store.Incr(ctx, ns, key, by, ttl)
}

func (f *flakyStore) List(ctx context.Context, ns, prefix string) ([]string, error) {
	if f.down.Load() {
		return nil, f.err("list")
	}
	return f.Store.List(ctx, ns, prefix)
}

// logLines collects log output for assertions.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

const outageModule = `return { new = function(config, api)
  local s = api.store
  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
    local body = ev.content.body
    if body == "write" then
      s.set("k", "before")
      assert(s.incr("n") == 1)
    elseif body == "down" then
      -- Every call raises a catchable error; the callback goes on.
      for _, c in ipairs({ {"get", s.get, "k"}, {"set", s.set, "k", 1}, {"delete", s.delete, "k"},
                           {"incr", s.incr, "n"}, {"list", s.list, ""} }) do
        local ok, err = pcall(c[2], select(3, unpack(c)))
        assert(not ok, c[1] .. " did not fail")
        assert(tostring(err):find("store%." .. c[1] .. ": storage unavailable: "), "error: " .. tostring(err))
      end
      local ok, err = pcall(function() local n = s.incr("n"); return n end)
      assert(not ok and err:find("^store%.lua:%d+: store%.incr: storage unavailable: "), "error: " .. tostring(err))
    elseif body == "uncaught" then
      s.get("k")
    elseif body == "check" then
      assert(s.get("k") == "before", "value written before the outage: " .. tostring(s.get("k")))
      assert(s.incr("n") == 2)
    end
    return api.NOT_SPAM
  end }
end }
`

// A backend outage is a catchable error, logged once per burst; the
// module keeps serving and calls work again when the backend is back,
// with the data written before the outage.
func TestStoreOutage(t *testing.T) {
	defer SetStoreLogEvery(time.Hour)()

	fs := &flakyStore{Store: openTestStore(t, storage.Config{Backend: "memory"})}
	logs := &logLines{}
	e := newStoreEngine(t, fs, slog.New(slog.NewTextHandler(logs, nil)), "",
		storeModule{"store", outageModule, ""})
	runCase(t, e, "write")

	fs.down.Store(true)
	for i := 0; i < 3; i++ {
		runCase(t, e, "down")
	}
	err := callSpam(t, e, "uncaught")
	if err == nil || !strings.Contains(err.Error(), "store.get: storage unavailable: flaky get: storage is closed") {
		t.Fatalf("uncaught outage error: %v", err)
	}
	if n := logs.count(`msg="storage unavailable;`); n != 1 {
		t.Fatalf("outage logged %d times in one burst; want once:\n%s", n, logs)
	}
	// While the failures go on, the outage is logged again every
	// storeLogEvery (one failing call here).
	SetStoreLogEvery(50 * time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	if err := callSpam(t, e, "uncaught"); err == nil {
		t.Fatal("no error while down")
	}
	SetStoreLogEvery(time.Hour)
	if n := logs.count(`msg="storage unavailable;`); n != 2 {
		t.Fatalf("outage logged %d times after some time of failures; want twice:\n%s", n, logs)
	}

	fs.down.Store(false)
	runCase(t, e, "check")
	if n := logs.count(`msg="storage recovered"`); n != 1 {
		t.Fatalf("recovery logged %d times; want once:\n%s", n, logs)
	}
	// 3 "down" cases of 6 calls each and 2 uncaught gets.
	if !strings.Contains(logs.String(), "failed_calls=20") {
		t.Errorf("the recovery line does not count the 20 failed calls:\n%s", logs)
	}

	// A new burst is logged again.
	fs.down.Store(true)
	runCase(t, e, "down")
	if n := logs.count(`msg="storage unavailable;`); n != 3 {
		t.Fatalf("new burst logged %d times in total; want 3:\n%s", n, logs)
	}
	fs.down.Store(false)
}

// A closed store (the engine's store gone) fails the calls the same way.
func TestStoreClosed(t *testing.T) {
	st := openTestStore(t, storage.Config{Backend: "memory"})
	e := newStoreEngine(t, st, nil, "", storeModule{"store", outageModule, ""})
	runCase(t, e, "write")
	st.Close()
	runCase(t, e, "down")
	runCase(t, e, "down")
}
