package engine_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/internal/clock"
	"github.com/luahost/luahost/internal/testhooks"
)

// On the fake clock `luahost test` uses, a module's sense of time follows
// the clock: sleeps return at once and move it, background calls run when
// it passes their time, store keys expire by it, and every way a script
// reads the time agrees.
func TestFakeClockDrivesTheModule(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	fake := clock.NewFake(start)
	store := storage.NewMemory(fake.Now)
	defer store.Close()
	// A minute's sleep fits the call's deadline only when the timeout is
	// longer: the fake clock does not change what times out.
	cfg, err := ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: m.lua\n    timeout: 2m\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := `
local time = require("time")
local M = {}
function M.new(config, api)
  local ticks, delayed = 0, 0
  api.looping_background_call(function() ticks = ticks + 1 end, 1000)
  api.delayed_background_call(30000, function() delayed = delayed + 1 end)
  local stopped = api.looping_background_call(function() error("stopped loops never run") end, 500)
  stopped.stop()
  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      local what = event.content.body
      if what == "sleep" then
        local before = api.get_current_time_msec()
        api.sleep(60)
        return api.Codes.FORBIDDEN, { slept_ms = api.get_current_time_msec() - before, ticks = ticks }
      elseif what == "now" then
        return api.Codes.FORBIDDEN, { api_ms = api.get_current_time_msec(), time_ms = time.now_ms(),
          time_s = time.now(), os_time = os.time(), os_date = os.date("!%Y-%m-%d %H:%M:%S"),
          ticks = ticks, delayed = delayed }
      elseif what == "background" then
        api.run_as_background_process("count", function() delayed = delayed + 10 end)
      elseif what == "set" then
        api.store.set("k", "v", 10)
      elseif what == "get" then
        return api.Codes.FORBIDDEN, { found = api.store.get("k") ~= nil }
      end
      return api.NOT_SPAM
    end,
  }
end
return M`
	ctx := testhooks.With(context.Background(), &testhooks.Hooks{Clock: fake})
	e, err := New(ctx, cfg, Options{FS: mapFS(map[string]string{"m.lua": src}), Logger: quiet, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ask := func(what string) map[string]any {
		t.Helper()
		d, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", what))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return d.Extra
	}
	num := func(v any) float64 { f, _ := v.(float64); return f }

	got := ask("now")
	wantMS := float64(start.UnixMilli())
	if num(got["api_ms"]) != wantMS || num(got["time_ms"]) != wantMS || num(got["time_s"]) != float64(start.Unix()) ||
		num(got["os_time"]) != float64(start.Unix()) || got["os_date"] != "2023-11-14 22:13:20" {
		t.Errorf("the time reads differ from the fake clock's %v: %v", start, got)
	}

	// A minute's sleep takes no real time and runs the timers due in it.
	began := time.Now()
	got = ask("sleep")
	if num(got["slept_ms"]) != 60000 {
		t.Errorf("api.sleep(60) moved the clock %v ms", got["slept_ms"])
	}
	if num(got["ticks"]) != 60 {
		t.Errorf("a 1 s loop ran %v times during a 60 s sleep, want 60", got["ticks"])
	}
	if real := time.Since(began); real > 5*time.Second {
		t.Errorf("a fake minute took %v of real time", real)
	}
	got = ask("now")
	if num(got["delayed"]) != 1 {
		t.Errorf("the 30 s delayed call ran %v times after 60 s, want 1", got["delayed"])
	}

	// A background process runs when the test next moves the clock.
	ask("background")
	if got := ask("now"); num(got["delayed"]) != 1 {
		t.Errorf("the background process ran before the clock moved: delayed = %v", got["delayed"])
	}
	if err := fake.Advance(0); err != nil {
		t.Fatal(err)
	}
	if got := ask("now"); num(got["delayed"]) != 11 {
		t.Errorf("the background process did not run on Advance(0): delayed = %v", got["delayed"])
	}

	ask("set")
	if err := fake.Advance(9 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ask("get"); got["found"] != true {
		t.Error("a 10 s key expired after 9 s")
	}
	if err := fake.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ask("get"); got["found"] != false {
		t.Error("a 10 s key is still there after 10 s")
	}
	if got := ask("now"); num(got["ticks"]) != 70 {
		t.Errorf("ticks = %v after 70 fake seconds, want 70", got["ticks"])
	}
}

// A sleep longer than the call's deadline times out, as it would for
// real, naming the line that slept.
func TestFakeSleepPastTheDeadlineTimesOut(t *testing.T) {
	fake := clock.NewFake(time.Unix(1_700_000_000, 0))
	cfg, err := ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: m.lua\n    timeout: 100ms\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := "local M = {}\nfunction M.new(config, api)\n  api.register_spam_checker_callbacks{ check_event_for_spam = function(event)\n    api.sleep(1)\n    return api.NOT_SPAM\n  end }\nend\nreturn M\n"
	e, err := New(testhooks.With(context.Background(), &testhooks.Hooks{Clock: fake}), cfg, Options{FS: mapFS(map[string]string{"m.lua": src}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.CheckEventForSpam(context.Background(), msg("@a:example.org", "x"))
	if err == nil || !strings.Contains(err.Error(), "(m.lua:4)") || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("got %v, want a timeout at m.lua:4", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A test's transport answers api.http_client instead of the network (and
// addresses the SSRF guard would refuse are the test's to answer).
func TestHookedTransportAnswersHTTPClient(t *testing.T) {
	var seen []string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.Method+" "+r.URL.String())
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"spam": true}`)), Request: r}, nil
	})
	cfg, err := ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: m.lua\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := `local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{ check_event_for_spam = function(event)
    local v = api.http_client.post_json_get_json("http://127.0.0.1:9/check", { body = event.content.body })
    if v.spam then return api.Codes.FORBIDDEN end
    return api.NOT_SPAM
  end }
end
return M`
	ctx := testhooks.With(context.Background(), &testhooks.Hooks{Transport: rt})
	e, err := New(ctx, cfg, Options{FS: mapFS(map[string]string{"m.lua": src}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "buy"))
	if err != nil || d.Errcode != "M_FORBIDDEN" {
		t.Fatalf("got %+v, %v; want M_FORBIDDEN from the hooked answer", d, err)
	}
	if len(seen) != 1 || seen[0] != "POST http://127.0.0.1:9/check" {
		t.Errorf("requests: %v", seen)
	}
}
