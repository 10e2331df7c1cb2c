package engine_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	. "github.com/luahost/luahost/engine"

	"github.com/luahost/luahost/engine/storage"
)

// api.store's atomic updates (update, transaction, set if absent) on every
// backend, and store_namespace: concurrent writers in several modules and
// several engines sharing one namespace end at exact counts.

const atomicSuite = `local json = require("json")
local M = {}

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

  function cases.update(ev)
    assert(s.update("u", function(v) assert(v == nil, "starts missing"); return 1 end) == 1)
    assert(s.update("u", function(v) return v + 1 end) == 2)
    assert(s.get("u") == 2)
    s.update("t", function(v) v = v or { items = {} }; v.items[#v.items + 1] = "a"; return v end)
    s.update("t", function(v) v.items[#v.items + 1] = "b"; return v end)
    assert(json.encode(s.get("t")) == '{"items":["a","b"]}', json.encode(s.get("t")))
    -- nil or api.store.DELETE deletes; a missing key stays missing
    assert(s.update("u", function() return nil end) == nil)
    assert(s.get("u") == nil, "nil deletes")
    s.set("d", 1)
    s.update("d", function() return s.DELETE end)
    assert(s.get("d") == nil, "DELETE deletes")
    s.update("never", function() return nil end)
    assert(s.get("never") == nil)
    -- fn runs in the script: it may call host functions (they yield)
    s.set("other", 4)
    assert(s.update("y", function(v) return s.get("other") + 1 end) == 5)
    -- an error in fn writes nothing and reaches the caller
    fails("boom", s.update, "u2", function() error("boom") end)
    assert(s.get("u2") == nil)
    assert(s:update("colon", function() return 3 end) == 3, "colon call")
    s.update("ttl", function() return "x" end, 60)
    assert(s.get("ttl") == "x")
    fails("store.update: bad argument #2 (fn): function expected, got nil", s.update, "k")
    fails("store.update: bad argument #1 (key): the key is empty", s.update, "", function() end)
    fails("store.update: fn returned a value that cannot be stored", s.update, "k", function() return function() end end)
    fails("store.update: bad argument #3 (ttl_seconds): a positive number of seconds expected, got -1", s.update, "k", function() return 1 end, -1)
    assert(s.get("k") == nil)
  end

  function cases.if_absent(ev)
    assert(s.set("a", 1, { if_absent = true }) == true)
    assert(s.set("a", 2, { if_absent = true }) == false)
    assert(s.get("a") == 1, "if_absent keeps the value")
    assert(s.set_if_absent("b", "x") == true)
    assert(s.set_if_absent("b", "y", 60) == false)
    assert(s.get("b") == "x")
    assert(s.set("a", 3) == true, "plain set reports it stored")
    assert(s.get("a") == 3)
    assert(s.set("e", 1, { ttl = 60, if_absent = true }) == true)
    assert(s.set("f", 1, { ttl = 60 }) == true)
    fails('store.set: bad argument #3 (options): unknown option "ifabsent"', s.set, "a", 1, { ifabsent = true })
    fails("store.set: bad argument #3 (options.ttl): a positive number of seconds expected, got -1", s.set, "a", 1, { ttl = -1 })
    fails("store.set: bad argument #3 (options): if_absent must be a boolean", s.set, "a", 1, { if_absent = "yes" })
  end

  function cases.transaction(ev)
    s.set("alice", 30)
    local function move(v)
      if (v.alice or 0) < 10 then return nil end
      return { alice = v.alice - 10, bob = (v.bob or 0) + 10 }
    end
    local w = s.transaction({ "alice", "bob" }, move)
    assert(w.alice == 20 and w.bob == 10, json.encode(w))
    assert(s.get("alice") == 20 and s.get("bob") == 10)
    s.transaction({ "alice", "bob" }, move)
    s.transaction({ "alice", "bob" }, move)
    assert(s.transaction({ "alice", "bob" }, move) == nil, "nil: nothing to do")
    assert(s.get("alice") == 0 and s.get("bob") == 30)
    s.transaction({ "alice", "bob" }, function(v) return { alice = s.DELETE } end)
    assert(s.get("alice") == nil and s.get("bob") == 30, "DELETE in a transaction")
    fails([[store.transaction: fn wrote key "carol", which is not one of the transaction's keys]],
      s.transaction, { "bob" }, function() return { carol = 1 } end)
    assert(s.get("carol") == nil)
    fails("store.transaction: bad argument #1 (keys): 1 to 100 keys expected, got 0", s.transaction, {}, function() end)
    fails("store.transaction: fn must return a table of writes", s.transaction, { "bob" }, function() return 5 end)
    fails("store.transaction: bad argument #2 (fn): function expected, got string", s.transaction, { "bob" }, "f")
    assert(s.get("bob") == 30, "failed transactions wrote nothing")
    -- a unique index: the first owner of a token wins
    local function claim(token, owner)
      return s.transaction({ "token:" .. token, "owner:" .. owner }, function(v)
        if v["token:" .. token] ~= nil then return nil end
        return { ["token:" .. token] = owner, ["owner:" .. owner] = token }
      end) ~= nil
    end
    assert(claim("t1", "ann") and not claim("t1", "ben") and claim("t2", "ben"))
    assert(s.get("token:t1") == "ann" and s.get("owner:ben") == "t2")
  end

  function cases.conflict(ev)
    local calls = 0
    local err = fails([[store.update: the value at key "hot" kept changing: gave up after 3 attempts]],
      s.update, "hot", function(v) calls = calls + 1; s.set("hot", calls); return "mine" end)
    assert(calls == 3, "fn ran " .. calls .. " times")
    assert(err:find("^[^ ]+%.lua:%d+: store%.update: "), "the error points at the script: " .. err)
    assert(s.get("hot") == 3, "fn's own writes won, never its answer")
    calls = 0
    fails("store.transaction: the keys kept changing: gave up after 3 attempts",
      s.transaction, { "x", "hot" }, function(v) calls = calls + 1; s.set("hot", -calls); return { x = 1 } end)
    assert(calls == 3 and s.get("x") == nil)
  end

  function cases.bump(ev)
    s.update("n", function(v) return (v or 0) + 1 end)
    s.transaction({ "total", "mine:" .. config.me }, function(v)
      return { total = (v.total or 0) + 1, ["mine:" .. config.me] = (v["mine:" .. config.me] or 0) + 1 }
    end)
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

// atomicModule is a module of atomicSuite in a namespace.
type atomicModule struct{ name, ns, me string }

func newAtomicEngine(t testing.TB, st storage.Store, mods ...atomicModule) *Engine {
	t.Helper()
	var y strings.Builder
	y.WriteString("server_name: example.org\nmodules:\n")
	files := map[string]string{}
	for _, m := range mods {
		files[m.name+".lua"] = atomicSuite
		fmt.Fprintf(&y, "  - module: %s.lua\n    timeout: 60s\n    config: {me: %s}\n", m.name, m.me)
		if m.ns != "" {
			fmt.Fprintf(&y, "    store_namespace: %s\n", m.ns)
		}
	}
	cfg, err := ParseConfig([]byte(y.String()), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), cfg, Options{FS: mapFS(files), Store: st, Logger: quiet})
	if e != nil {
		t.Cleanup(func() { e.Close() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestStoreAtomic(t *testing.T) {
	cleanupStoreRedis(t)
	defer SetStoreMaxAttempts(3)()
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			if b.name == "redis" {
				storeRedisURL(t)
			}
			for _, c := range []string{"update", "if_absent", "transaction", "conflict"} {
				t.Run(c, func(t *testing.T) {
					st := b.open(t)(t)
					name := storeModName("atomic")
					runCase(t, newAtomicEngine(t, st, atomicModule{name: name, me: "a"}), c)
				})
			}
		})
	}
}

// Three modules in two engines (two luahost processes over one store)
// share a namespace through store_namespace and update the same keys at
// once: every update counts.
func TestStoreAtomicConcurrentAcrossModules(t *testing.T) {
	cleanupStoreRedis(t)
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			if b.name == "redis" {
				storeRedisURL(t)
			}
			open := b.open(t)
			st1 := open(t)
			st2 := st1
			if b.name == "redis" {
				st2 = open(t) // a second client, as a second process has
			}
			ns := storeModName("shared")
			e1 := newAtomicEngine(t, st1,
				atomicModule{name: storeModName("m1"), ns: ns, me: "m1"},
				atomicModule{name: storeModName("m2"), ns: ns, me: "m2"})
			e2 := newAtomicEngine(t, st2, atomicModule{name: storeModName("m3"), ns: ns, me: "m3"})
			const goroutines, calls = 6, 10
			var wg sync.WaitGroup
			errs := make(chan error, goroutines*calls)
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := e1
					if g%2 == 1 {
						e = e2
					}
					for i := 0; i < calls; i++ {
						if err := callSpam(t, e, "bump"); err != nil {
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
			// e1 runs both its modules per call, e2 its one.
			perEngine := goroutines / 2 * calls
			want := map[string]int{"n": 3 * perEngine, "total": 3 * perEngine,
				"mine:m1": perEngine, "mine:m2": perEngine, "mine:m3": perEngine}
			for key, n := range want {
				v, _ := goGet(t, st1, ns, key)
				if v != strconv.Itoa(n) {
					t.Errorf("%s = %q, want %d", key, v, n)
				}
			}
		})
	}
}
