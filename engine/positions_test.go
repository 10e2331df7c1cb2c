package engine_test

import (
	"strings"
	"testing"
)

// A module's errors point at its own file and line, whichever way they
// arise: a builtin passed to pcall, a stack overflow (with or without
// pcall), a host function passed to pcall.
func TestModuleErrorsPointAtTheScript(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": `local json = require("json")
return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
	local n = ev.content.n
	if n == 1 then local function f() return f() + 1 end f() end
	if n == 2 then local function g(x) return 1 + g(x) end local ok, e = pcall(g, 1) error(e, 0) end
	if n == 3 then local ok, e = pcall(json.decode, "x") error(e, 0) end
	if n == 4 then local ok, e = pcall(string.rep) error(e, 0) end
	if n == 5 then local ok, e = pcall(api.delayed_background_call, -1, print) error(e, 0) end
	return api.NOT_SPAM
end } end }`})
	want := map[int]string{
		1: `module "m" (m.lua:4): check_event_for_spam: stack overflow (more than 1024 nested calls)`,
		2: `module "m" (m.lua:5): check_event_for_spam: stack overflow`,
		3: `module "m" (m.lua:6): check_event_for_spam: json.decode: invalid character 'x'`,
		4: `module "m" (m.lua:7): check_event_for_spam: bad argument #1 to string.rep`,
		5: `module "m" (m.lua:8): check_event_for_spam: bad argument #1 to api.delayed_background_call (msec must not be negative)`,
	}
	for n := 1; n <= len(want); n++ {
		ev := msg("@a:example.org", "x")
		ev.Content["n"] = n
		_, err := e.CheckEventForSpam(bg, ev)
		if err == nil || !strings.HasPrefix(err.Error(), want[n]) || strings.Contains(err.Error(), "<") {
			t.Errorf("case %d: got %v\nwant %s", n, err, want[n])
		}
	}
}
