package engine_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"

	"github.com/luahost/luahost/engine/storage"
)

// Background work runs under background_timeout, not the module's
// callback timeout, stops with the generation, and logs its errors with
// file and line.

// bgEngine loads one module m.lua (entry adds to its config entry) over a
// memory store, logging to logs.
func bgEngine(t *testing.T, src, entry string, logs *logLines) (*Engine, storage.Store) {
	t.Helper()
	st := openTestStore(t, storage.Config{Backend: "memory"})
	cfg, err := ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: m.lua\n"+entry), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := quiet
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	e, err := New(context.Background(), cfg, Options{FS: mapFS(map[string]string{"m.lua": src}), Store: st, Logger: log})
	if e != nil {
		t.Cleanup(func() { e.Close() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return e, st
}

// waitFor polls until cond holds, failing the test when it does not within
// a generous bound (a hang, not a speed check).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func storeValue(t *testing.T, st storage.Store, key string) string {
	t.Helper()
	v, _ := goGet(t, st, "m", key)
	return v
}

// autoAccept is synapse-auto-accept-invite's retry loop, with its 1, 2, 4
// and 8 second waits scaled down to 10, 20, 40 and 80 ms: 150 ms in all,
// three times the module's timeout of 50 ms.
const autoAccept = `local M = {}
function M.new(config, api)
  local function accept(room_id, how)
    local attempts = 0
    for _, wait in ipairs({ 0.01, 0.02, 0.04, 0.08 }) do
      attempts = attempts + 1
      api.sleep(wait)
    end
    api.store.set(how, room_id .. " after " .. attempts .. " attempts")
  end
  api.run_as_background_process("auto-accept invite", accept, "!r:example.org", "process")
  api.delayed_background_call(0, accept, "!r:example.org", "delayed")
  local n = 0
  local loop
  loop = api.looping_background_call(function()
    n = n + 1
    if n == 1 then accept("!r:example.org", "looping") end
  end, 10)
end
return M
`

func TestBackgroundWorkOutlivesTheCallbackTimeout(t *testing.T) {
	_, st := bgEngine(t, autoAccept, "    timeout: 50ms\n", nil)
	for _, key := range []string{"process", "delayed", "looping"} {
		waitFor(t, key, func() bool { return storeValue(t, st, key) == `"!r:example.org after 4 attempts"` })
	}
}

func TestBackgroundTimeoutCutsOffAndLogsWhere(t *testing.T) {
	logs := &logLines{}
	_, st := bgEngine(t, autoAccept, "    timeout: 1s\n    background_timeout: 60ms\n", logs)
	waitFor(t, "three timeouts logged", func() bool { return logs.count("timed out after 60ms") >= 3 })
	for _, key := range []string{"process", "delayed", "looping"} {
		if v := storeValue(t, st, key); v != "" {
			t.Errorf("%s finished (%s) despite the 60ms background_timeout", key, v)
		}
	}
	out := logs.String()
	for _, want := range []string{`msg="run_as_background_process auto-accept invite failed"`, `msg="delayed_background_call failed"`,
		`m.lua:7`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not contain %s:\n%s", want, out)
		}
	}
}

func TestBackgroundErrorsAreLoggedWithFileAndLine(t *testing.T) {
	logs := &logLines{}
	bgEngine(t, `local M = {}
function M.new(config, api)
  api.run_as_background_process("checker", function(x)
    error("no luck with " .. x)
  end, "room")
end
return M
`, "", logs)
	waitFor(t, "the error in the log", func() bool { return logs.count("no luck with room") > 0 })
	if out := logs.String(); !strings.Contains(out, `(m.lua:4): run_as_background_process: no luck with room`) || !strings.Contains(out, "run_as_background_process checker failed") {
		t.Fatalf("log:\n%s", out)
	}
}

// background_timeout: 0 runs until the generation ends: closing the engine
// cancels a background call parked in a long sleep, and no goroutine
// outlives Close (goleak in TestMain).
func TestBackgroundWithoutTimeoutStopsWithTheGeneration(t *testing.T) {
	logs := &logLines{}
	e, st := bgEngine(t, `local M = {}
function M.new(config, api)
  api.run_as_background_process("forever", function()
    api.store.set("sleeping", true)
    api.sleep(3600)
    api.store.set("woke", true)
  end)
end
return M
`, "    background_timeout: 0\n", logs)
	waitFor(t, "the process to sleep", func() bool { return storeValue(t, st, "sleeping") == "true" })
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close waits for a background process sleeping for an hour")
	}
	if storeValue(t, st, "woke") != "" {
		t.Fatal("the process went on after Close")
	}
	if strings.Contains(logs.String(), "forever failed") {
		t.Errorf("stopping with the generation is not a failure:\n%s", logs.String())
	}
}

// With several instances, background work started in a constructor runs
// once (instance 1's), and work a callback starts runs on the instance
// that handled the callback, whichever it is.
func TestBackgroundWorkOnEveryInstance(t *testing.T) {
	e, st := bgEngine(t, `local M = {}
function M.new(config, api)
  api.run_as_background_process("ctor", function() api.store.incr("ctor") end)
  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
    api.run_as_background_process("cb", function(i) api.store.incr("cb:" .. i) end, api.instance)
    api.sleep(0.01) -- keep this instance busy so the next call takes another
    return api.NOT_SPAM
  end }
end
return M
`, "    instances: 2\n", nil)
	done := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			_, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "x"))
			done <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "8 background calls", func() bool {
		a, _ := goGet(t, st, "m", "cb:1")
		b, _ := goGet(t, st, "m", "cb:2")
		n := func(s string) int {
			var x int
			for _, c := range s {
				x = x*10 + int(c-'0')
			}
			return x
		}
		return n(a)+n(b) == 8
	})
	if v := storeValue(t, st, "cb:2"); v == "" {
		t.Error("no background call ran on instance 2")
	}
	time.Sleep(50 * time.Millisecond) // a second constructor call would have run by now
	if v := storeValue(t, st, "ctor"); v != "1" {
		t.Errorf("the constructor's background call ran %s times", v)
	}
}
