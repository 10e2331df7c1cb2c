package engine_test

import (
	"fmt"
	"strings"
	"testing"
)

// runChecks runs Lua snippets inside a spam check of a module configured
// by extra (module entry keys) and reports each failing assert.
func runChecks(t *testing.T, extra string, checks []string) {
	t.Helper()
	var src strings.Builder
	src.WriteString("local checks = {}\n")
	for i, c := range checks {
		fmt.Fprintf(&src, "checks[%d] = function(api) %s end\n", i+1, c)
	}
	src.WriteString(`return { new = function(c, api) api.register_spam_checker_callbacks{
		check_event_for_spam = function(ev) checks[ev.content.n](api) return api.NOT_SPAM end } end }`)
	e := mustEngine(t, "server_name: example.org\nstorage: {backend: memory}\nmodules:\n  - module: m.lua\n"+extra,
		map[string]string{"m.lua": src.String()})
	for i, c := range checks {
		ev := msg("@a:example.org", "hi")
		ev.Content["n"] = i + 1
		if _, err := e.CheckEventForSpam(bg, ev); err != nil {
			t.Errorf("check %d `%s`: %v", i+1, c, err)
		}
	}
}

// Over a quota is a Lua error the script can catch, naming the quota.
func TestTimerQuota(t *testing.T) {
	runChecks(t, "    max_timers: 5\n", []string{
		`_G.handles = {} for i = 1, 5 do handles[i] = api.delayed_background_call(3600000, function() end) end`,
		`local ok, err = pcall(api.delayed_background_call, 3600000, function() end)
		 assert(not ok and err:find("m.lua:%d+: delayed_background_call: the module has 5 pending timers already %(its max_timers quota%)"), err)`,
		`local ok, err = pcall(api.looping_background_call, function() end, 1000)
		 assert(not ok and err:find("max_timers"), err)`,
		`handles[1].stop()`,
		`local deadline = os.clock() + 5
		 repeat
		   local ok, err = pcall(api.delayed_background_call, 3600000, function() end)
		   if ok then return end
		   api.sleep(0.01)
		 until os.clock() > deadline
		 error("a stopped timer did not free its place")`,
	})
}

// The default quota stops a handler that starts a million timers (it held
// 2.9 GB before) at 10,000.
func TestTimerQuotaDefault(t *testing.T) {
	runChecks(t, "", []string{
		`local n, err = 0
		 for i = 1, 1e6 do
		   local ok, e = pcall(api.delayed_background_call, 3600000, function() end)
		   if not ok then err = e break end
		   n = n + 1
		 end
		 assert(n == 10000 and err:find("max_timers"), n .. " " .. tostring(err))`,
	})
}

func TestLoopingIntervalMinimum(t *testing.T) {
	runChecks(t, "", []string{
		`local ok, err = pcall(api.looping_background_call, function() end, 1)
		 assert(not ok and err:find("at least 10 ms"), err)`,
		`local ok, err = pcall(api.delayed_background_call, 1e300, function() end)
		 assert(not ok and err:find("at most a year"), err)`,
		`api.looping_background_call(function() end, 10).stop()`,
	})
}

func TestStoreValueQuota(t *testing.T) {
	runChecks(t, "    max_store_value: 1KiB\n", []string{
		`api.store.set("small", ("x"):rep(1000))`,
		`local ok, err = pcall(api.store.set, "big", ("x"):rep(1100))
		 assert(not ok and err:find("m.lua:%d+: store.set: bad argument #2 %(value%): 1102 bytes as JSON, over the module's max_store_value quota of 1024 bytes"), err)
		 assert(api.store.get("big") == nil)`,
	})
	runChecks(t, "", []string{
		`local ok, err = pcall(api.store.set, "big", ("x"):rep(60e6))
		 assert(not ok and err:find("max_store_value quota of 1048576 bytes"), err)`,
	})
}
