package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"
)

// A callback that keeps filling a table within one call is stopped with
// "memory limit exceeded" at its line, and the module keeps serving.
func TestMemoryLimitStopsAGreedyCall(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n    max_memory: 32MiB\n    timeout: 20s\n", map[string]string{
		"m.lua": `local keep = {}
return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
	if ev.content.body == "greedy" then
		for i = 1, 1e9 do
			keep[#keep + 1] = string.rep("x", 1e5)
		end
	end
	return api.NOT_SPAM
end } end }`})
	_, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "greedy"))
	var se *ScriptError
	if !errors.As(err, &se) || !se.Memory || !strings.Contains(err.Error(), "memory limit exceeded") || se.Line != 5 {
		t.Fatalf("err = %v; want a memory ScriptError at m.lua:5", err)
	}
	// The state holds what the calls kept: once it holds more than its
	// limit (the heap growth that stopped a call may include other
	// garbage, so one call may not be enough), the module restarts from a
	// fresh generation and answers again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.Status()[0]
		if st.MemoryRestart != nil && st.Generation > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no memory restart in Status: %+v", st)
		}
		if _, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "greedy")); !errors.As(err, &se) || !se.Memory {
			t.Fatalf("err = %v; want a memory ScriptError", err)
		}
	}
	if d, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "hi")); err != nil || !d.Allowed() {
		t.Fatalf("after the restart: %+v %v", d, err)
	}
}

// Calls that each keep a little (a cache that grows without bound) are
// caught by measuring the state: the module restarts before it holds
// much more than its limit.
func TestMemoryLimitRestartsAStateThatGrowsAcrossCalls(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n    max_memory: 24MiB\n", map[string]string{
		"m.lua": `local keep = {}
return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
	keep[#keep + 1] = string.rep("y", 2e6) .. #keep
	return api.NOT_SPAM
end } end }`})
	for i := 0; i < 200; i++ {
		_, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "x"))
		var se *ScriptError
		if err != nil && !(errors.As(err, &se) && se.Memory) {
			// A call that finds the heap grown past the module's limit
			// while the restart is on its way may be stopped too.
			t.Fatalf("call %d: %v", i, err)
		}
		if st := e.Status()[0]; st.MemoryRestart != nil {
			if !strings.Contains(st.MemoryRestart.Error(), "over its max_memory of 24 MiB") {
				t.Errorf("status: %v", st.MemoryRestart)
			}
			return
		}
	}
	t.Fatal("200 calls keeping 2 MB each (400 MB) and no memory restart")
}

// An error object whose __tostring loops (or returns something that is
// not a string) is turned into text under a short deadline: the module
// answers the error and keeps serving.
func TestErrorObjectsWithBadToString(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
	local body = ev.content.body
	if body == "loop" then error(setmetatable({}, {__tostring = function() while true do end end})) end
	if body == "table" then error(setmetatable({}, {__tostring = function() return {} end})) end
	return api.NOT_SPAM
end } end }`})
	for _, body := range []string{"loop", "table"} {
		_, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", body))
		if err == nil || !strings.Contains(err.Error(), "error object is not a string") || !strings.Contains(err.Error(), "m.lua:3") && !strings.Contains(err.Error(), "m.lua:4") {
			t.Errorf("%s: err = %v", body, err)
		}
	}
	if d, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "ok")); err != nil || !d.Allowed() {
		t.Fatalf("the module stopped serving: %+v %v", d, err)
	}
}
