package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	. "github.com/luahost/luahost/engine"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every test closes its engines; no goroutine may outlive Close.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// loadEngine builds an engine from a config and module files held in
// memory. It returns the load error instead of failing the test.
func loadEngine(t *testing.T, yaml string, files map[string]string) (*Engine, error) {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		return nil, err
	}
	e, err := New(context.Background(), cfg, Options{FS: mapFS(files), Logger: quiet})
	t.Cleanup(func() { e.Close() })
	return e, err
}

// loadPartial loads with Options.AllowPartial: the modules that load
// serve; the error lists what Status reports failed.
func loadPartial(t *testing.T, yaml string, files map[string]string) (*Engine, error) {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), cfg, Options{FS: mapFS(files), Logger: quiet, AllowPartial: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	var errs LoadErrors
	for _, st := range e.Status() {
		if st.LastError != nil {
			errs = append(errs, st.LastError)
		}
	}
	if len(errs) == 0 {
		return e, nil
	}
	return e, errs
}

func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return fsys
}

func mustEngine(t *testing.T, yaml string, files map[string]string) *Engine {
	t.Helper()
	e, err := loadEngine(t, yaml, files)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return e
}

func msg(sender, body string) *Event {
	return &Event{Type: "m.room.message", RoomID: "!r:example.org", Sender: sender, EventID: "$e",
		Content: map[string]any{"msgtype": "m.text", "body": body}}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/broken/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBrokenModulesGiveErrorsThatPoint(t *testing.T) {
	cases := []struct {
		file   string
		config string
		want   []string
	}{
		{"syntax.lua", "", []string{`module "m"`, "syntax.lua:5:", "near 'end'"}},
		{"top_error.lua", "", []string{`module "m" (top_error.lua:3)`, "loading the script", "attempt to index"}},
		{"ctor_error.lua", "", []string{`module "m" (ctor_error.lua:6)`, "new: cannot start: no ban list"}},
		{"config_error.lua", "    config: {evil_users: nope}\n", []string{"test.yaml:5:", `module "m"`, "config: evil_users must be a list of user IDs", "config_error.lua:5"}},
		{"no_table.lua", "", []string{`module "m"`, "must return a module table", "got nil"}},
		{"no_new.lua", "", []string{`module "m"`, "M.new(config, api)"}},
		{"bad_callback.lua", "", []string{`module "m" (bad_callback.lua:3): new: register_spam_checker_callbacks:`, `unknown callback "check_event_for_spamm" (did you mean check_event_for_spam? valid: check_event_for_spam,`}},
		{"missing_require.lua", "", []string{"(missing_require.lua:1)", `module "helpers_that_do_not_exist" not found`, "libraries: module_api, base64"}},
		{"escape_require.lua", "", []string{"(escape_require.lua:1)", "invalid module name"}},
		{"reserved_path.lua", "", []string{"(reserved_path.lua:3)", "/_matrix/", "homeserver owns"}},
		{"slow_ctor.lua", "    init_timeout: 200ms\n", []string{`module "m" (slow_ctor.lua:3)`, "timed out after 200ms"}},
		{"missing.lua", "", []string{"test.yaml:3:", "script missing.lua not found"}},
		// The config: key's line, not the first line of its value.
		{"config_error.lua", "    config:\n      evil_users: nope\n", []string{"test.yaml:5:", "config: evil_users must be a list of user IDs"}},
		{"parse_config_nil.lua", "", []string{`module "m" (parse_config_nil.lua:4): parse_config: returned nil`, "return config"}},
		{"api_typo.lua", "", []string{`(api_typo.lua:3)`, "api.register_spam_checker_callback: no such function (did you mean register_spam_checker_callbacks?)"}},
		{"api_missing.lua", "", []string{`(api_missing.lua:3)`, "api.make_deferred_yieldable: no such function", "docs/module_api.md"}},
		{"store_typo.lua", "", []string{`(store_typo.lua:3)`, "api.store.sett: no such function (did you mean set?)"}},
		{"io_open.lua", "", []string{`(io_open.lua:3)`, "io is not available in the luahost sandbox"}},
		{"os_getenv.lua", "", []string{`(os_getenv.lua:2)`, "os.getenv is not available in the luahost sandbox"}},
		// A deadline that passes while a host call waits names the
		// line that made the call.
		{"slow_host_call.lua", "    init_timeout: 200ms\n", []string{`module "m" (slow_host_call.lua:3)`, "timed out after 200ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			yaml := "server_name: example.org\nmodules:\n  - module: " + tc.file + "\n    name: m\n" + tc.config
			files := map[string]string{}
			if tc.file != "missing.lua" {
				files[tc.file] = fixture(t, tc.file)
			}
			e, err := loadEngine(t, yaml, files)
			if err == nil {
				t.Fatal("load succeeded; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if e != nil {
				t.Errorf("New returned an engine with the error: %+v", e.Status())
			}
		})
	}
}

func TestEveryFailingModuleIsReportedAndTheOthersServe(t *testing.T) {
	yaml := `server_name: example.org
modules:
  - module: syntax.lua
  - module: good.lua
  - module: ctor_error.lua
`
	e, err := loadPartial(t, yaml, map[string]string{
		"syntax.lua":     fixture(t, "syntax.lua"),
		"ctor_error.lua": fixture(t, "ctor_error.lua"),
		"good.lua": `return { new = function(config, api)
			api.register_spam_checker_callbacks{ check_event_for_spam = function(ev) return api.Codes.FORBIDDEN end }
		end }`,
	})
	var le LoadErrors
	if !errors.As(err, &le) || len(le) != 2 {
		t.Fatalf("want 2 load errors, got %v", err)
	}
	if !strings.Contains(le[0].Error(), "syntax.lua") || !strings.Contains(le[1].Error(), "ctor_error.lua") {
		t.Errorf("errors not in config order or missing files: %v", le)
	}
	d, cerr := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "hi"))
	if cerr != nil || d.Errcode != "M_FORBIDDEN" {
		t.Errorf("the good module should still answer: %+v %v", d, cerr)
	}
}

func TestConfigErrorsNameFileAndLine(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"server_name: x\nmodules:\n  - module: a.lua\n    confg: {}\n", `test.yaml:4: module 1: unknown key "confg" (valid keys: background_timeout, config, init_timeout, instances, max_memory, max_store_value, max_timers, module, name, on_error, store_namespace, timeout); did you mean "config"?`},
		{"server_nme: x\nmodules: []\n", `test.yaml:1: unknown key "server_nme"`},
		{"server_name: x\nmodules:\n  - name: a\n", "test.yaml:3: module 1: missing `module:`"},
		{"server_name: x\nmodules:\n  - module: a.lua\n    timeout: soon\n", `test.yaml:4: module 1: timeout: "soon" is not a duration`},
		{"server_name: x\nmodules:\n  - module: a.lua\n    on_error: maybe\n", `on_error must be "deny" or "default"`},
		{"server_name: x\nmodules:\n  - module: ../../etc/x.lua\n", "must be inside the config file's folder"},
		{"server_name: x\nmodules:\n  - module: a.lua\n  - module: a.lua\n", `module name "a" is used twice (first at line 3)`},
		{"server_name: x\nmodules:\n  - module: a.lua\n   bad indent: 1\n", "test.yaml:2: invalid YAML"},
		{"server_name: x\n", "no modules: list"},
		{"server_name: x\nstorage: {backend: mysql}\nmodules: []\n", `storage.backend "mysql" is not one of bolt, memory, redis`},
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.yaml), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config:\n%s\ngot error %v\nwant it to contain %q", tc.yaml, err, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: spam/list_spam.lua\n    timeout: 1.5\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Modules[0]
	if m.Name != "list_spam" || m.Timeout != 1500*time.Millisecond || m.InitTimeout != DefaultInitTimeout || cfg.Listen != DefaultListen {
		t.Errorf("defaults wrong: %+v listen=%s", m, cfg.Listen)
	}
}

// A module that allows, one that rejects, and one that must never be
// asked because the rejection came first.
func TestSpamCheckFirstRejectionWinsAndLaterModulesAreNotCalled(t *testing.T) {
	e := mustEngine(t, `server_name: example.org
modules:
  - module: allow.lua
  - module: reject.lua
  - module: boom.lua
`, map[string]string{
		"allow.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{
			check_event_for_spam = function(ev) return api.NOT_SPAM end } end }`,
		"reject.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{
			check_event_for_spam = function(ev)
				if ev.content.body == "spam" then return api.Codes.FORBIDDEN, { reason = "spam" } end
				return api.NOT_SPAM
			end } end }`,
		"boom.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{
			check_event_for_spam = function(ev)
				if ev.content.body == "spam" then error("boom.lua must not be called after a rejection") end
				return api.NOT_SPAM
			end } end }`,
	})
	ctx := context.Background()
	d, err := e.CheckEventForSpam(ctx, msg("@a:example.org", "spam"))
	if err != nil {
		t.Fatal(err)
	}
	if got := verdict(d); got != `403 {"errcode":"M_FORBIDDEN","error":"This message has been rejected as probable spam","reason":"spam"}` {
		t.Errorf("decision %s", got)
	}
	d, err = e.CheckEventForSpam(ctx, msg("@a:example.org", "hello"))
	if err != nil || !d.Allowed() {
		t.Errorf("ham rejected: %+v %v", d, err)
	}
}

func TestSpamCheckLegacyAndInvalidReturns(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{
			check_event_for_spam = function(ev)
				local b = ev.content.body
				if b == "false" then return false end
				if b == "true" then return true end
				if b == "string" then return "Go away" end
				if b == "number" then return 42 end
				if b == "nil" then return nil end
				return api.NOT_SPAM
			end,
			user_may_join_room = function(user, room, invited) return invited end,
		} end }`,
	})
	ctx := context.Background()
	const refused = `403 {"errcode":"M_FORBIDDEN","error":"This message has been rejected as probable spam"}`
	for body, want := range map[string]string{
		"false":  "NOT_SPAM",
		"true":   refused,
		"string": `403 {"errcode":"M_FORBIDDEN","error":"Go away"}`,
		"number": refused,
		"nil":    refused,
		"ok":     "NOT_SPAM",
	} {
		d, err := e.CheckEventForSpam(ctx, msg("@a:example.org", body))
		if got := verdict(d); err != nil || got != want {
			t.Errorf("body %q: got %s %v, want %s", body, got, err, want)
		}
	}
	d, _ := e.UserMayJoinRoom(ctx, "@a:example.org", "!r:example.org", true)
	if !d.Allowed() {
		t.Error("legacy true should allow user_may_join_room")
	}
	d, _ = e.UserMayJoinRoom(ctx, "@a:example.org", "!r:example.org", false)
	if d.Allowed() {
		t.Error("legacy false should reject user_may_join_room")
	}
}

func TestEndlessLoopIsCutOffAndTheModuleKeepsWorking(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: loop.lua\n    timeout: 150ms\n", map[string]string{
		"loop.lua": `local M = {}
function M.new(c, api)
  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
    if ev.content.body == "loop" then
      while true do end
    end
    return api.NOT_SPAM
  end }
end
return M`,
	})
	ctx := context.Background()
	_, err := e.CheckEventForSpam(ctx, msg("@a:example.org", "loop"))
	var se *ScriptError
	if !errors.As(err, &se) || !se.Timeout {
		t.Fatalf("want a timeout ScriptError, got %v", err)
	}
	if !strings.Contains(err.Error(), `module "loop" (loop.lua:5): check_event_for_spam: timed out after 150ms`) {
		t.Errorf("timeout error does not point at the loop: %v", err)
	}
	for i := 0; i < 3; i++ {
		d, err := e.CheckEventForSpam(ctx, msg("@a:example.org", "fine"))
		if err != nil || !d.Allowed() {
			t.Fatalf("module did not recover after the timeout: %+v %v", d, err)
		}
	}
}

func TestOnErrorDenyFailsClosed(t *testing.T) {
	files := map[string]string{"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{
		check_event_for_spam = function(ev) local x = nil; return x.field end } end }`}
	ctx := context.Background()
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", files)
	_, err := e.CheckEventForSpam(ctx, msg("@a:example.org", "x"))
	if err == nil || !strings.Contains(err.Error(), `module "m" (m.lua:2): check_event_for_spam: attempt to index`) {
		t.Errorf("default policy should fail the operation with a pointing error, got %v", err)
	}
	e2 := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n    on_error: deny\n", files)
	d, err := e2.CheckEventForSpam(ctx, msg("@a:example.org", "x"))
	if err != nil || d.Errcode != "M_FORBIDDEN" {
		t.Errorf("on_error: deny should reject, got %+v %v", d, err)
	}
}

func TestSandbox(t *testing.T) {
	// Each line is checked inside a callback; a failing assert names it.
	checks := []string{
		// What the sandbox takes away is absent, and reading it says so.
		`assert(rawget(_G, "io") == nil and rawget(_G, "debug") == nil and rawget(_G, "package") == nil, "io, debug, package")`,
		`assert(rawget(_G, "dofile") == nil and rawget(_G, "loadfile") == nil, "dofile/loadfile")`,
		`assert(rawget(os, "execute") == nil and rawget(os, "exit") == nil and rawget(os, "getenv") == nil and rawget(os, "remove") == nil, "os")`,
		`for _, name in ipairs{"io", "debug", "package", "dofile", "loadfile"} do local ok, err = pcall(function() return _G[name] end); assert(not ok and err:find(name .. " is not available in the luahost sandbox", 1, true), err) end`,
		`local ok, err = pcall(function() return os.execute("ls") end); assert(not ok and err:find("m.lua:%d+: os.execute is not available in the luahost sandbox"), err)`,
		`local ok, err = pcall(function() return ("x"):dump() end); assert(not ok and err:find("string.dump is not available"), err)`,
		`assert(rawget(_G, "no_such_global") == nil and no_such_global == nil, "other missing globals are nil")`,
		`local ok, err = pcall(function() return api.get_profile_for_usr end); assert(not ok and err:find("api.get_profile_for_usr: no such function (did you mean get_profile_for_user?)", 1, true), err)`,
		`assert(api.worker_name == nil and rawget(api, "no_such") == nil, "nil-able members and rawget read nil")`,
		// Sub-tables and classes are filled on first use; pairs and a typo fill them too.
		`local n = 0; for k in pairs(api.http_client) do n = n + 1 end; assert(n >= 3 and rawget(api.http_client, "get_json") ~= nil, "pairs fills a lazy table")`,
		`local names = {}; for k in pairs(api.UserID) do names[#names + 1] = k end; table.sort(names); assert(table.concat(names, ",") == "SIGIL,from_string,is_valid,new", table.concat(names, ","))`,
		`local ok, err = pcall(function() return api.RoomID.from_strin end); assert(not ok and err:find("api.RoomID.from_strin: no such function (did you mean from_string?)", 1, true), err)`,
		`assert(tostring(api.RoomAlias("a", "example.org")) == "#a:example.org" and api.RoomAlias.SIGIL == "#" and api.RoomAlias.is_valid("#a:example.org"), "id classes")`,
		`local ok, err = pcall(function() return api.Codes.FORBIDEN end); assert(not ok and err:find("api.Codes.FORBIDEN: no such errcode (did you mean FORBIDDEN?)", 1, true), err)`,
		`local ok, err = pcall(function() return api.server_nam end); assert(not ok and err:find("no such member (did you mean server_name?)", 1, true), err)`,
		`assert(type(os.time()) == "number" and type(os.clock()) == "number" and type(os.date()) == "string", "safe os")`,
		`assert(not pcall(string.rep, "x", 4e9), "string.rep is capped")`,
		`assert(not pcall(string.format, "%999999999d", 1), "format width is capped")`,
		`assert(collectgarbage("count") ~= nil, "collectgarbage answers count")`,
		`local ok, err = pcall(require, "../secret"); assert(not ok and err:find("invalid module name"), err)`,
		`assert(require("helper").answer == 42, "sibling files can be required")`,
		`assert(require("json").encode({1}) == "[1]", "stdlib")`,
		`local ok, err = pcall(function() local a = {} ; return a.b.c end); assert(not ok and err:find("m.lua:"), err)`,
		`local t = {}; for i = 1, 20000 do t[i] = i end; assert(select("#", unpack(t)) == 20000, "unpack of 20k")`,
		`local function r(n) if n == 0 then return 0 end return 1 + r(n - 1) end; assert(r(500) == 500, "recursion depth 500")`,
		`assert(api.register_spam_checker_callbacks ~= nil)`,
		`local ok, err = pcall(api.register_spam_checker_callbacks, {}); assert(not ok and err:find("only allowed during module initialisation"), err)`,
		`local ok, err = pcall(api.register_web_resource, "/_synapse/client/x", function() end); assert(not ok and err:find("only allowed during module initialisation"), err)`,
		`local n = 0; for k, v in pairs(ev) do n = n + 1 end; assert(n >= 5, "pairs(event) walks the fields")`,
		`assert(require("json").decode(require("json").encode(ev)).content.body == "hi", "json.encode(event)")`,
		`local ok, err = pcall(function() ev.sender = "x" end); assert(not ok and err:find("read%-only"), err)`,
		`local d = ev:get_dict(); d.content.body = "changed"; assert(ev.content.body == "hi" and d.content.body == "changed", "get_dict copies")`,
		`assert(pcall(api.sleep, 0.001), "a host call inside pcall yields")`,
		`local ok, err = pcall(function() api.sleep(0.001); error("after sleep") end); assert(not ok and err:find("m.lua:%d+: after sleep"), err)`,
		`local co = coroutine.create(function() api.sleep(0) end); local ok, err = coroutine.resume(co); assert(not ok and err:find("coroutine created by the script"), err)`,
		`local ok, err = pcall(table.sort, {3, 2, 1}, function(a, b) api.sleep(0); return a < b end); assert(not ok and err:find("table.sort"), err)`,
		`assert(api.get_qualified_user_id("bob") == "@bob:example.org" and api.is_mine("@bob:example.org") and not api.is_mine("@bob:other.org"))`,
		`assert(api:get_qualified_user_id("bob") == "@bob:example.org", "colon call works")`,
	}
	var src strings.Builder
	src.WriteString("local checks = {}\n")
	for i, c := range checks {
		fmt.Fprintf(&src, "checks[%d] = function(api, ev) %s end\n", i+1, c)
	}
	src.WriteString(`return { new = function(c, api) api.register_spam_checker_callbacks{
		check_event_for_spam = function(ev)
			local n = ev.content.n
			checks[n](api, ev)
			return api.NOT_SPAM
		end } end }`)
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": src.String(), "helper.lua": "return { answer = 42 }",
	})
	for i, c := range checks {
		ev := msg("@a:example.org", "hi")
		ev.Content["n"] = i + 1
		if _, err := e.CheckEventForSpam(context.Background(), ev); err != nil {
			t.Errorf("check %d `%s`: %v", i+1, c, err)
		}
	}
}

func TestConcurrentCallsOnOneModule(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": `local count = 0
return { new = function(c, api) api.register_spam_checker_callbacks{
	check_event_for_spam = function(ev)
		count = count + 1
		if ev.sender == "@evil:example.org" then return api.Codes.FORBIDDEN end
		return api.NOT_SPAM
	end } end }`,
	})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				sender, want := "@ok:example.org", true
				if (g+i)%3 == 0 {
					sender, want = "@evil:example.org", false
				}
				d, err := e.CheckEventForSpam(context.Background(), msg(sender, "x"))
				if err != nil || d.Allowed() != want {
					errs <- fmt.Errorf("%s: %+v %v", sender, d, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTimersRunOnTheModuleAndStopWithIt(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n    timeout: 1s\n", map[string]string{
		"m.lua": `local ticks, delayed, failures = 0, nil, 0
return { new = function(c, api)
	api.looping_background_call(function(step)
		ticks = ticks + step
		if ticks == 2 then error("tick two fails; the loop goes on") end
	end, 10, 1)
	local h = api.delayed_background_call(10, function(v) delayed = v end, "ran")
	local cancelled = api.delayed_background_call(10, function() delayed = "cancelled too late" end)
	cancelled.stop()
	api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
		if ticks >= 4 and delayed == "ran" then return api.NOT_SPAM end
		return api.Codes.LIMIT_EXCEEDED
	end }
end }`,
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "x"))
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed() {
			break // four ticks despite the failing one, and the delayed call ran
		}
		if time.Now().After(deadline) {
			t.Fatalf("timers did not run: %+v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Close stops the timers: goleak in TestMain fails if one survives.
}

func TestMoreConfigChecks(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"server_name: x\nlistn: 1\nmodules: []\n", `did you mean "listen"?`},
		{"server_name: x\nstorage: {backend: redis}\nmodules: []\n", "backend redis needs url"},
		{"server_name: x\nhttp_client: {ip_range_allowlist: [10.0.0.0/33]}\nmodules: []\n", `test.yaml:2: http_client.ip_range_allowlist: "10.0.0.0/33" is not a CIDR`},
		{"server_name: x\nmodules:\n  - module: a.lua\n    name: \"a:b\"\n", `module name "a:b" may only contain`},
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.yaml), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config:\n%s\ngot %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestReservedPathsAreNeverRoutedToModules(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n  - module: n.lua\n", map[string]string{
		"m.lua": `return { new = function(c, api) api.register_web_resource("/", function() return { json = { catch = "all" } } end)
			api.register_web_resource("/_synapse/client/dup", function() return { json = { from = "m" } } end) end }`,
		"n.lua": `return { new = function(c, api) api.register_web_resource("/_synapse/client/dup", function() return { json = { from = "n" } } end) end }`,
	})
	for path, want := range map[string]int{"/_synapse/admin/v1/users": 404, "/_matrix/client/v3/sync": 404, "/anything": 200} {
		rec := httptest.NewRecorder()
		e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
	if p := e.Paths(); strings.Join(p, ",") != "/,/_synapse/client/dup" {
		t.Errorf("Paths lists each path once: %v", p)
	}
}

func TestErrorPositionsPointAtTheScriptNotTheEngine(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
	local ok, err = pcall(api.sleep, "soon")
	assert(not ok and not err:find("<string>"), "pcall(api.f) error: " .. tostring(err))
	ok, err = pcall(function() table.sort({2, 1}, function(a, b) api.sleep(0) return a < b end) end)
	assert(not ok and err:find("^m.lua:4:"), "sort error: " .. tostring(err))
	assert(1/0 == math.huge, "math.huge is infinity")
	return api.NOT_SPAM
end } end }`,
	})
	if _, err := e.CheckEventForSpam(bg, msg("@a:example.org", "x")); err != nil {
		t.Error(err)
	}
}

func TestErrorWithoutAMessageStillPoints(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": "return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)\n  error(nil)\nend } end }"})
	_, err := e.CheckEventForSpam(bg, msg("@a:example.org", "x"))
	if err == nil || !strings.Contains(err.Error(), `module "m" (m.lua:2): check_event_for_spam: error raised without a message`) {
		t.Errorf("got %v", err)
	}
}

// verdict is a spam decision as the homeserver answers it: NOT_SPAM, or
// the status and error body of d.Err().
func verdict(d SpamDecision) string {
	if d.Allowed() {
		if d.Err() != nil {
			return "allowed with an error"
		}
		return "NOT_SPAM"
	}
	se := d.Err()
	b, _ := json.Marshal(se.ErrorBody())
	return fmt.Sprintf("%d %s", se.Code, b)
}
