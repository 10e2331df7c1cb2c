package lint_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/luahost/luahost/internal/lint"
)

// testEnv is a small sandbox, so the expected messages below stay stable
// when module_api grows; env_test.go checks against the real one.
var testEnv = lint.Env{
	Globals: lint.Fields{
		"print": nil, "pairs": nil, "ipairs": nil, "require": nil, "pcall": nil, "type": nil,
		"tostring": nil, "error": nil, "unpack": nil, "setmetatable": nil, "_G": nil,
		"string": {"format": nil, "rep": nil, "sub": nil, "len": nil},
		"table":  {"insert": nil, "concat": nil, "sort": nil, "remove": nil},
		"math":   {"floor": nil, "huge": nil, "max": nil},
		"os":     {"time": nil, "clock": nil, "date": nil, "difftime": nil},
	},
	API: lint.Fields{
		"register_spam_checker_callbacks": nil, "get_profile_for_user": nil, "is_mine": nil,
		"NOT_SPAM": nil, "ConfigError": nil,
		"Codes":                {"FORBIDDEN": nil, "LIMIT_EXCEEDED": nil},
		"store":                {"get": nil, "set": nil, "incr": nil, "delete": nil, "list": nil},
		"http_client":          {"get_json": nil, "post_json_get_json": nil, "put_json": nil, "request": nil},
		"account_data_manager": {"get_global": nil, "put_global": nil},
	},
}

// format is how the cases below spell a warning: line:column code: message.
func format(w lint.Warning) string {
	return fmt.Sprintf("%d:%d %s: %s", w.Line, w.Column, w.Code, w.Msg)
}

const shared = " (globals are shared by every callback of the module)"

type lintCase struct {
	name string
	src  string
	want []string
}

func runCases(t *testing.T, env lint.Env, cases []lintCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := lint.Check([]byte(tc.src), "spam.lua", env)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			var got []string
			for _, w := range ws {
				if w.File != "spam.lua" {
					t.Errorf("File = %q", w.File)
				}
				got = append(got, format(w))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("source:\n%s\ngot:\n  %s\nwant:\n  %s", tc.src, strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestScoping(t *testing.T) {
	runCases(t, testEnv, []lintCase{
		{"local x = x reads the outer x", "local count = count\nlocal print = print\n",
			[]string{"1:0 undefined-global: count is not defined"}},
		{"local function sees itself", "local function f(n) if n > 0 then return f(n - 1) end end\n", nil},
		{"local f = function sees f too (gopher-lua registers it first)", "local f = function(n) return f(n) end\n", nil},
		{"but not with two names", "local f, g = function() return f end, 1\n",
			[]string{"1:0 undefined-global: f is not defined"}},
		{"repeat-until sees the body's locals", "repeat local done = true until done\n", nil},
		{"while does not", "while not done do local done = true end\n",
			[]string{"1:0 undefined-global: done is not defined"}},
		{"for variables live in the body only", "for i = 1, i do print(i) end\nfor k, v in pairs({}) do print(k, v) end\nprint(k)\n",
			[]string{"1:0 undefined-global: i is not defined", "3:7 undefined-global: k is not defined"}},
		{"a block's locals end with it", "do local z = 1 end\nprint(z)\n",
			[]string{"2:7 undefined-global: z is not defined"}},
		{"then-locals are not seen by elseif", "if 1 then local q = 1 elseif q then print(q) else print(q) end\n",
			[]string{"1:0 undefined-global: q is not defined"}},
		{"parameters, self and arg", "local M = {}\nfunction M:get(a, ...) return self, a, arg, ... end\nprint(self, arg)\nreturn M\n",
			[]string{"3:7 undefined-global: self is not defined", "3:13 undefined-global: arg is not defined"}},
		{"shadowing ends with the block", "local n = 1\ndo local n = 'x' end\nprint(n, m)\n",
			[]string{"3:10 undefined-global: m is not defined"}},
		{"a local of an inner function is not seen outside", "local function f() local inner = 1 end\nreturn inner\n",
			[]string{"2:8 undefined-global: inner is not defined"}},
		{"upvalues are seen", "local total = 0\nlocal function add(n) total = total + n end\n", nil},
	})
}

func TestGlobals(t *testing.T) {
	runCases(t, testEnv, []lintCase{
		{"writes", "count = 0\nfunction helper() count = count + 1 end\nlocal function f() helper() end\n",
			[]string{
				`1:1 global-write: assignment to global "count": use local count` + shared,
				`2:0 global-write: assignment to global "count": use local count` + shared,
				`2:10 global-write: assignment to global "helper": use local function helper` + shared,
			}},
		{"a write inside the constructor", "local M = {}\nfunction M.new(config, api) seen = {} end\nreturn M\n",
			[]string{`2:29 global-write: assignment to global "seen": use local seen` + shared}},
		{"one write in a multiple assignment", "local a\na, b = 1, 2\n",
			[]string{`2:4 global-write: assignment to global "b": use local b` + shared}},
		{"fields the script adds to a library are defined", "function string.trim(s) return s end\nstring.pad = 1\nprint(string.trim(' x '), string.pad, string.padd)\n",
			[]string{"3:39 undefined-global: string.padd is not defined (did you mean string.pad?)"}},
		{"_G.name = v defines name, deliberately", "_G.shared = {}\nprint(shared, _G.shared, _G.anything)\n", nil},
		{"a field of an undefined global", "cache.x = 1\n", []string{"1:1 undefined-global: cache is not defined"}},
		{"sandbox", "local f = io.open('x')\nlocal h = os.getenv('HOME') .. os.date()\nos.execute('ls')\nprint(debug.traceback(), package.path)\ndofile('x.lua')\nloadfile('y.lua')\nprint(string.dump)\n",
			[]string{
				"1:11 sandbox-global: io is not available in the luahost sandbox (no file access); keep data in api.store and settings in the module's config",
				"2:11 sandbox-global: os.getenv is not available in the luahost sandbox; pass settings through the module's config",
				"3:1 sandbox-global: os.execute is not available in the luahost sandbox (no processes)",
				`4:7 sandbox-global: debug is not available in the luahost sandbox; trace with print or require("log")`,
				`4:26 sandbox-global: package is not available in the luahost sandbox; require("name") loads name.lua from the module's folder or a bundled library`,
				`5:1 sandbox-global: dofile is not available in the luahost sandbox (no file access); require("name") loads the module's own files`,
				`6:1 sandbox-global: loadfile is not available in the luahost sandbox (no file access); require("name") loads the module's own files`,
				"7:7 sandbox-global: string.dump is not available in the luahost sandbox (no bytecode)",
			}},
		{"the same mistake twice on a line is one warning", "io.write(io.read())\n",
			[]string{"1:0 sandbox-global: io is not available in the luahost sandbox (no file access); keep data in api.store and settings in the module's config"}},
		{"a global the script defines itself is its own", "io = {write = print}\nio.write('x')\n",
			[]string{`1:1 global-write: assignment to global "io": use local io` + shared}},
		{"a local named like a removed global", "local io = {}\nio.write('x')\nlocal os = {}\nprint(os.getenv)\n", nil},
		{"did you mean", "local counter = 0\ntabel.insert({}, 1)\npirnt(countr)\nprint(math.flor(1), string.fromat('%d', 1))\n",
			[]string{
				"2:1 undefined-global: tabel is not defined (did you mean table?)",
				"3:1 undefined-global: pirnt is not defined (did you mean print?)",
				"3:7 undefined-global: countr is not defined (did you mean counter?)",
				"4:7 undefined-global: math.flor is not defined (did you mean math.floor?)",
				"4:21 undefined-global: string.fromat is not defined (did you mean string.format?)",
			}},
		{"nothing close", "print(zzz)\n", []string{"1:7 undefined-global: zzz is not defined"}},
		{"Lua 5.2 names", "local t = table.pack(1)\nprint(table.unpack(t), utf8)\n",
			[]string{
				`1:11 undefined-global: table.pack is not defined (gopher-lua is Lua 5.1: use {...} and select("#", ...))`,
				"2:7 undefined-global: table.unpack is not defined (gopher-lua is Lua 5.1: use unpack)",
				"2:24 undefined-global: utf8 is not defined (gopher-lua is Lua 5.1: there is no utf8 library)",
			}},
		{"api is not a global", "local function helper(x) return api.is_mine(x) end\n",
			[]string{`1:33 undefined-global: api is not defined (api is the second parameter of M.new(config, api), or local api = require("module_api"))`}},
		{"unchecked tables and dynamic keys", "print(_G.anything, math.huge.x, string[k])\n",
			[]string{"1:40 undefined-global: k is not defined"}},
		{"method calls on globals", "local s = string:fromat()\n",
			[]string{"1:11 undefined-global: string.fromat is not defined (did you mean string.format?)"}},
	})
}

const ctor = "local M = {}\nfunction M.new(config, host)\n%s\nend\nreturn M\n"

func TestAPIMembers(t *testing.T) {
	runCases(t, testEnv, []lintCase{
		{"the constructor's second parameter, any name", fmt.Sprintf(ctor, "host.register_spam_checker_callbacks{}\nhost.get_profile_for_usr('a')"),
			[]string{"4:1 unknown-api-member: host.get_profile_for_usr is not a module_api member (did you mean host.get_profile_for_user?)"}},
		{"nested tables, with . and :", fmt.Sprintf(ctor, "host.store.gett('k')\nhost.store:get('k')\nhost.http_client.get_jsn('u')\nhost.account_data_manager:get_gloabl('u', 't')\nreturn host.Codes.FORBIDEN, host.Codes.FORBIDDEN"),
			[]string{
				"3:1 unknown-api-member: host.store.gett is not a module_api member (did you mean host.store.get?)",
				"5:1 unknown-api-member: host.http_client.get_jsn is not a module_api member (did you mean host.http_client.get_json?)",
				"6:1 unknown-api-member: host.account_data_manager.get_gloabl is not a module_api member (did you mean host.account_data_manager.get_global?)",
				"7:8 unknown-api-member: host.Codes.FORBIDEN is not a module_api member (did you mean host.Codes.FORBIDDEN?)",
			}},
		{"method call on the api table", fmt.Sprintf(ctor, "return host:is_mine('x'), host:is_mien('x')"),
			[]string{"3:27 unknown-api-member: host.is_mien is not a module_api member (did you mean host.is_mine?)"}},
		{"a member on the next line", fmt.Sprintf(ctor, "host\n  .bogus()"),
			[]string{"4:0 unknown-api-member: host.bogus is not a module_api member"}},
		{"aliases and upvalues", "local M = {}\nlocal saved\nlocal function later() return saved.nope() end\nfunction M.new(config, a)\n  saved = a\n  local b = a\n  b.bogus()\nend\nreturn M\n",
			[]string{
				"3:31 unknown-api-member: saved.nope is not a module_api member",
				"7:3 unknown-api-member: b.bogus is not a module_api member",
			}},
		{"require module_api", "local api = require('module_api')\nlocal other = require 'module_api'\nerror(api.ConfigEror('x'))\nother.NOT_SPAM = other.NOT_SPAM\nreturn other.NOT_SAPM\n",
			[]string{
				"3:7 unknown-api-member: api.ConfigEror is not a module_api member (did you mean api.ConfigError?)",
				"5:8 unknown-api-member: other.NOT_SAPM is not a module_api member (did you mean other.NOT_SPAM?)",
			}},
		{"any parameter named api", "local function helper(api, user) return api.is_mien(user) end\n",
			[]string{"1:41 unknown-api-member: api.is_mien is not a module_api member (did you mean api.is_mine?)"}},
		{"M.new = function", "local mod = {}\nmod.new = function(config, x) x.bogus() end\nreturn mod\n",
			[]string{"2:31 unknown-api-member: x.bogus is not a module_api member"}},
		{"a returned table constructor", "return { new = function(config, x) x.bogus() end }\n",
			[]string{"1:36 unknown-api-member: x.bogus is not a module_api member"}},
		{"a module table built by a constructor", "local M = { new = function(config, x) x.bogus() end }\nreturn M\n",
			[]string{"1:39 unknown-api-member: x.bogus is not a module_api member"}},
		{"not ported", fmt.Sprintf(ctor, "host.run_db_interaction('q')"),
			[]string{"3:1 unknown-api-member: host.run_db_interaction is not a module_api member (luahost has no SQL access to the homeserver: use api.store)"}},
		{"writes to api members are the script's own", fmt.Sprintf(ctor, "host.cache = {}\nhost.cache.n = 1\nhost.store.mine = 1\nreturn host.cache, host.store.mine, host.store.other"),
			[]string{"6:37 unknown-api-member: host.store.other is not a module_api member"}},
		{"dynamic keys are not checked", fmt.Sprintf(ctor, "local name = 'x'\nreturn host[name], host.Codes[name], host.store[name]"), nil},
	})
}

// What is not the api table is not checked against it.
func TestNotTheAPITable(t *testing.T) {
	runCases(t, testEnv, []lintCase{
		{"new of a table that is not returned", "local M = {}\nfunction M.new(config, x) x.bogus() end\nreturn {}\n", nil},
		{"first parameter", "local M = {}\nfunction M.new(x, api) x.bogus() end\nreturn M\n", nil},
		{"the constructor's first parameter even if named api", "local M = {}\nfunction M.new(api, x) return api.max_length end\nreturn M\n", nil},
		{"another function's parameter", "local function f(config, client) client.bogus() end\n", nil},
		{"a local named api holding a table", "local api = {}\napi.bogus()\n", nil},
		{"given api and something else", fmt.Sprintf(ctor, "local x = host\nif config.fake then x = {} end\nx.bogus()"), nil},
		{"given api or a default", fmt.Sprintf(ctor, "local x = host or {}\nx.bogus()"), nil},
		{"a local that only aliases itself", "local a\na = a\na.bogus()\n", nil},
		{"require shadowed", "local require = function() return {} end\nlocal api = require('module_api')\napi.bogus()\n", nil},
		{"require of something else", "local log = require('log')\nlog.bogus()\n", nil},
		{"a later local with the module's name", "local M = {}\ndo local M = {} function M.new(c, x) x.bogus() end end\nreturn M\n", nil},
		{"extra names from a call", "local a, b = require('module_api')\nb.bogus()\n", nil},
	})
}

func TestSuppression(t *testing.T) {
	runCases(t, testEnv, []lintCase{
		{"bare, on the line", "count = 0 -- luahost:ignore\n", nil},
		{"with its code", "count = 0 -- luahost:ignore global-write\n", nil},
		{"with a reason", "count = 0 --luahost:ignore global-write -- shared on purpose\n", nil},
		{"several codes", "x = io -- luahost:ignore sandbox-global, global-write\n", nil},
		{"another code does not silence", "count = 0 -- luahost:ignore sandbox-global\n",
			[]string{`1:1 global-write: assignment to global "count": use local count` + shared}},
		{"alone on a line: the next line", "-- luahost:ignore sandbox-global\nlocal f = io.open('x')\nlocal g = io.open('y')\n",
			[]string{"3:11 sandbox-global: io is not available in the luahost sandbox (no file access); keep data in api.store and settings in the module's config"}},
		{"unknown code", "count = 0 -- luahost:ignore global-wirte\n",
			[]string{
				`1:0 bad-ignore: unknown warning code "global-wirte" in luahost:ignore (did you mean global-write?)`,
				`1:1 global-write: assignment to global "count": use local count` + shared,
			}},
		{"not inside a string", "print('-- luahost:ignore', zzz)\n",
			[]string{"1:28 undefined-global: zzz is not defined"}},
		{"not in a block comment", "print(zzz) --[[ luahost:ignore ]]\n",
			[]string{"1:7 undefined-global: zzz is not defined"}},
		{"not a prefix of something else", "print(zzz) -- luahost:ignored\n",
			[]string{"1:7 undefined-global: zzz is not defined"}},
		{"after a long string", "local s = [[\n-- luahost:ignore\n]] print(zzz)\n",
			[]string{"3:10 undefined-global: zzz is not defined"}},
		{"after a block comment on the same line", "--[==[ x ]==] print(zzz) -- luahost:ignore\n", nil},
		{"carriage returns", "count = 0\r\n-- luahost:ignore\r\nx = 1\r\ny = 2 -- luahost:ignore\r\nz = 3\r\n",
			[]string{
				`1:1 global-write: assignment to global "count": use local count` + shared,
				`5:1 global-write: assignment to global "z": use local z` + shared,
			}},
	})
}

func TestPartialEnv(t *testing.T) {
	src := "local M = {}\nfunction M.new(config, api) count = io; api.bogus() end\nreturn M\n"
	runCases(t, lint.Env{API: testEnv.API}, []lintCase{{"no globals: only writes and api", src, []string{
		`2:29 global-write: assignment to global "count": use local count` + shared,
		"2:41 unknown-api-member: api.bogus is not a module_api member",
	}}})
	runCases(t, lint.Env{Globals: testEnv.Globals}, []lintCase{{"no api", src, []string{
		`2:29 global-write: assignment to global "count": use local count` + shared,
		"2:37 sandbox-global: io is not available in the luahost sandbox (no file access); keep data in api.store and settings in the module's config",
	}}})
}

func TestErrors(t *testing.T) {
	deep := strings.Repeat("{", 300) + strings.Repeat("}", 300)
	cases := []struct {
		name, src string
		want      string
		tooDeep   bool
	}{
		{"syntax", "local x = 1\nlocal = 2\n", "spam.lua:2: syntax error near '='", false},
		{"end of file", "if x then\n", "spam.lua: syntax error at the end of the file", false},
		{"nested tables", "local t =\n" + deep, "spam.lua:2: nested deeper than 200 levels: not linted", true},
		// A function passed to a call is three levels (statement, call, function):
		// 66 such levels are linted, the 67th is refused.
		{"nested functions", strings.Repeat("f(function()\n", 250) + strings.Repeat("end)\n", 250), "spam.lua:67: nested deeper than 200 levels: not linted", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := lint.Check([]byte(tc.src), "spam.lua", testEnv)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
			if ws != nil {
				t.Errorf("warnings with an error: %v", ws)
			}
			if errors.Is(err, lint.ErrTooDeep) != tc.tooDeep {
				t.Errorf("errors.Is(err, ErrTooDeep) = %v", !tc.tooDeep)
			}
		})
	}
}

// Long chains are not nesting: operators, elseif ladders and field paths
// of any length are linted.
func TestLongChainsAreNotDeep(t *testing.T) {
	cases := map[string]string{
		"concatenation":  "local s = 'a'" + strings.Repeat(" .. 'a'", 10000) + " .. zzz\n",
		"arithmetic":     "local n = 1" + strings.Repeat(" + 1", 10000) + " + zzz\n",
		"logic":          "local b = true" + strings.Repeat(" and not false", 10000) + " or zzz\n",
		"elseif":         "local n = 1\nif n == 0 then" + strings.Repeat(" elseif n == 1 then", 5000) + " else print(zzz) end\n",
		"field path":     "local t = {}\nprint(t" + strings.Repeat(".a", 10000) + ", zzz)\n",
		"parentheses":    "local v = " + strings.Repeat("(", 10000) + "zzz" + strings.Repeat(")", 10000) + "\n",
		"unary":          "local v = " + strings.Repeat("not -", 10000) + "zzz\n",
		"just below max": "local t = " + strings.Repeat("{", 190) + "zzz" + strings.Repeat("}", 190) + "\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			ws, err := lint.Check([]byte(src), "spam.lua", testEnv)
			if err != nil {
				t.Fatal(err)
			}
			if len(ws) != 1 || ws[0].Code != lint.CodeUndefinedGlobal || !strings.HasPrefix(ws[0].Msg, "zzz ") {
				t.Errorf("got %v, want one undefined zzz", ws)
			}
		})
	}
}

// A file of thousands of misspellings gets every warning, but "did you
// mean" only while the bounded search budget lasts: the lint stays linear.
func TestManyMisspellingsStayBounded(t *testing.T) {
	var b strings.Builder
	const n = 3000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "local value_%d = 1 print(valeu_%d)\n", i, i)
	}
	ws, err := lint.Check([]byte(b.String()), "spam.lua", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != n {
		t.Fatalf("got %d warnings, want %d", len(ws), n)
	}
	if first := ws[0].Msg; first != "valeu_0 is not defined (did you mean value_0?)" {
		t.Errorf("first: %s", first)
	}
	if last := ws[n-1].Msg; last != fmt.Sprintf("valeu_%d is not defined", n-1) {
		t.Errorf("last: %s", last)
	}
}
