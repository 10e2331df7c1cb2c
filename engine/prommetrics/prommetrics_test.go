package prommetrics_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/prommetrics"
	"github.com/luahost/luahost/internal/invoke"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start loads modules (name -> source) with the metrics as the observer.
func start(t testing.TB, yaml string, files map[string]string) (*engine.Engine, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	e, err := engine.New(context.Background(), cfg, engine.Options{FS: fsys, Logger: quiet, Observer: m, AllowPartial: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	m.Attach(e)
	return e, reg
}

const modulesYAML = `server_name: example.org
storage: {backend: memory}
modules:
  - module: spam.lua
  - module: rules.lua
    timeout: 100ms
  - module: web.lua
  - module: never.lua
`

var modules = map[string]string{
	"spam.lua": `return { new = function(config, api) api.register_spam_checker_callbacks{
		check_event_for_spam = function(ev)
			if ev.content.body == "boom" then error("boom") end
			if ev.content.body == "spam" then return api.Codes.FORBIDDEN end
			return api.NOT_SPAM
		end } end }`,
	"rules.lua": `return { new = function(config, api) api.register_third_party_rules_callbacks{
		check_event_allowed = function(ev) if ev.content.body == "loop" then while true do end end error("no") end } end }`,
	"web.lua": `return { new = function(config, api)
		api.register_web_resource("/_synapse/client/count", function(req)
			return { json = { n = api.store.incr("hits") } }
		end)
		api.register_web_resource("/_synapse/client/fetch", function(req)
			local ok = pcall(api.http_client.get_json, "http://127.0.0.1:1/")
			return { status = 502 }
		end)
	end }`,
	"never.lua": `return {`,
}

func event(body string) *engine.Event {
	return &engine.Event{Type: "m.room.message", RoomID: "!r:example.org", Sender: "@a:example.org",
		Content: map[string]any{"body": body}}
}

// After callback calls and web requests the series move exactly as an
// admin reads them: names, labels and counts.
func TestMetricsMoveAfterCallsAndRequests(t *testing.T) {
	e, reg := start(t, modulesYAML, modules)
	ctx := context.Background()
	for _, body := range []string{"hi", "spam"} {
		if _, err := e.CheckEventForSpam(ctx, event(body)); err != nil {
			t.Fatal(err)
		}
	}
	// The way `luahost call` asks.
	if _, err := invoke.Call(ctx, e, "check_event_for_spam", []json.RawMessage{
		json.RawMessage(`{"type":"m.room.message","sender":"@a:example.org","content":{"body":"hi"}}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CheckEventForSpam(ctx, event("boom")); err == nil {
		t.Fatal("boom should fail")
	}
	e.CheckEventAllowed(ctx, event("x"), engine.StateMap{})
	e.CheckEventAllowed(ctx, event("loop"), engine.StateMap{})
	h := e.Handler()
	for _, path := range []string{"/_synapse/client/count", "/_synapse/client/count/x?user=@bob:example.org", "/_synapse/client/fetch"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/_synapse/client/count", nil))

	want := `
# HELP luahost_callback_calls_total Calls of a module's callback (timers' background calls included), whatever their outcome.
# TYPE luahost_callback_calls_total counter
luahost_callback_calls_total{callback="spam_checker.check_event_for_spam",module="spam"} 4
luahost_callback_calls_total{callback="third_party_rules.check_event_allowed",module="rules"} 2
# HELP luahost_callback_errors_total Callback calls that failed, by kind: error (the script raised or hit a limit), timeout (it overran the module's timeout), refused (its error refused the action: on_error: deny or a fail-closed callback).
# TYPE luahost_callback_errors_total counter
luahost_callback_errors_total{callback="spam_checker.check_event_for_spam",kind="error",module="spam"} 1
luahost_callback_errors_total{callback="third_party_rules.check_event_allowed",kind="refused",module="rules"} 1
luahost_callback_errors_total{callback="third_party_rules.check_event_allowed",kind="timeout",module="rules"} 1
# HELP luahost_web_requests_total Web requests a module's handler answered, by the path it registered and the status sent (499: the client went away).
# TYPE luahost_web_requests_total counter
luahost_web_requests_total{method="GET",module="web",path="/_synapse/client/count",status="200"} 2
luahost_web_requests_total{method="GET",module="web",path="/_synapse/client/fetch",status="502"} 1
luahost_web_requests_total{method="POST",module="web",path="/_synapse/client/count",status="200"} 1
# HELP luahost_host_calls_total Host calls scripts made (api.get_profile_for_user, api.store.get, api.http_client.get_json, ...).
# TYPE luahost_host_calls_total counter
luahost_host_calls_total{function="http_client.get_json",module="web"} 1
luahost_host_calls_total{function="store.incr",module="web"} 3
# HELP luahost_host_call_errors_total Host calls that returned an error to the script.
# TYPE luahost_host_call_errors_total counter
luahost_host_call_errors_total{function="http_client.get_json",module="web"} 1
# HELP luahost_store_operations_total api.store operations, by backend and operation (get, set, delete, incr, list).
# TYPE luahost_store_operations_total counter
luahost_store_operations_total{backend="memory",op="incr"} 3
# HELP luahost_http_client_requests_total Requests scripts made with api.http_client, whatever their outcome.
# TYPE luahost_http_client_requests_total counter
luahost_http_client_requests_total{module="web"} 1
# HELP luahost_http_client_errors_total api.http_client requests that got no response, by kind: refused (the address is not public and not in http_client.ip_range_allowlist; nothing was sent), timeout, error.
# TYPE luahost_http_client_errors_total counter
luahost_http_client_errors_total{kind="refused",module="web"} 1
# HELP luahost_module_generation The serving generation of each module: its count of successful loads.
# TYPE luahost_module_generation gauge
luahost_module_generation{module="never"} 0
luahost_module_generation{module="rules"} 1
luahost_module_generation{module="spam"} 1
luahost_module_generation{module="web"} 1
`
	names := []string{"luahost_callback_calls_total", "luahost_callback_errors_total", "luahost_web_requests_total",
		"luahost_host_calls_total", "luahost_host_call_errors_total", "luahost_store_operations_total",
		"luahost_http_client_requests_total", "luahost_http_client_errors_total", "luahost_module_generation"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "luahost_callback_duration_seconds"); err != nil || n != 2 {
		t.Errorf("callback latency: %d series (%v), want one per module and callback", n, err)
	}
	if got := gaugeValue(t, reg, "luahost_lua_states"); got < 3 {
		t.Errorf("luahost_lua_states = %v with three modules loaded", got)
	}
}

// gaugeValue reads a gauge without labels from the registry.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// Reload metrics: the generation follows successful loads only, a removed
// module's gauges go, the config's own errors count under module "".
func TestMetricsFollowReloads(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	m, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, src string) {
		t.Helper()
		if err := writeFile(dir, name, src); err != nil {
			t.Fatal(err)
		}
	}
	write("a.lua", `return { new = function() end }`)
	write("b.lua", `return { new = function() end }`)
	write("luahost.yaml", "server_name: example.org\nmodules:\n  - module: a.lua\n  - module: b.lua\n")
	cfg, err := engine.LoadConfig(dir + "/luahost.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(context.Background(), cfg, engine.Options{Logger: quiet, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	write("a.lua", `return { new = function() local x = 1 end }`)
	e.Reload(ctx)
	write("a.lua", `return {`)
	e.Reload(ctx)
	write("a.lua", `return { new = function() local x = 2 end }`)
	e.Reload(ctx)
	write("luahost.yaml", "server_name: example.org\nmodules:\n  - module: a.lua\n")
	e.Reload(ctx)
	write("luahost.yaml", "modules: [")
	e.Reload(ctx)
	want := `
# HELP luahost_module_generation The serving generation of each module: its count of successful loads.
# TYPE luahost_module_generation gauge
luahost_module_generation{module="a"} 3
# HELP luahost_reloads_total Module reloads after start-up, by outcome: ok, error (the previous version keeps serving; module="" when the config file itself had errors), removed.
# TYPE luahost_reloads_total counter
luahost_reloads_total{module="",outcome="error"} 1
luahost_reloads_total{module="a",outcome="error"} 1
luahost_reloads_total{module="a",outcome="ok"} 2
luahost_reloads_total{module="b",outcome="removed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "luahost_module_generation", "luahost_reloads_total"); err != nil {
		t.Error(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "luahost_last_reload_timestamp_seconds"); n != 1 {
		t.Errorf("no last reload time")
	}
}

// The names and help texts follow Prometheus's conventions, as its own
// linter reads them.
func TestMetricsLint(t *testing.T) {
	reg := feedAll(t)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func BenchmarkObserver(b *testing.B) {
	yaml := "server_name: example.org\nmodules:\n  - module: spam.lua\n"
	files := map[string]string{"spam.lua": modules["spam.lua"]}
	ev := event("hi")
	run := func(b *testing.B, e *engine.Engine) {
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := e.CheckEventForSpam(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	load := func(b *testing.B, obs engine.Observer) *engine.Engine {
		cfg, err := engine.ParseConfig([]byte(yaml), "test.yaml")
		if err != nil {
			b.Fatal(err)
		}
		fsys := fstest.MapFS{"spam.lua": &fstest.MapFile{Data: []byte(files["spam.lua"])}}
		e, err := engine.New(context.Background(), cfg, engine.Options{FS: fsys, Logger: quiet, Observer: obs})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		return e
	}
	b.Run("nil", func(b *testing.B) { run(b, load(b, nil)) })
	b.Run("nop", func(b *testing.B) { run(b, load(b, engine.NopObserver{})) })
	b.Run("prometheus", func(b *testing.B) {
		m, err := prommetrics.New(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		run(b, load(b, m))
	})
}

// BenchmarkCallEnd is what the Prometheus observer adds to one callback
// call (compare with BenchmarkObserver's whole call).
func BenchmarkCallEnd(b *testing.B) {
	m, err := prommetrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	ev := engine.CallEvent{Module: "spam", Callback: "spam_checker.check_event_for_spam", Duration: 5000}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.CallEnd(m.CallStart(ctx, ev), ev)
		}
	})
}
