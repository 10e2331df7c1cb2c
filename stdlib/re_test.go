package stdlib

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

func TestRe(t *testing.T) {
	runLuaCases(t, []luaCase{
		{name: "match", code: `
			local re = require("re")
			assert(re.match("^@[a-z0-9._=/-]+:[a-z0-9.-]+$", "@alice:example.org") == true)
			assert(re.match("^@[a-z]+$", "@Alice") == false)
			assert(re.match("(?i)^@[a-z]+$", "@Alice") == true)`},
		{name: "find", code: `
			local re = require("re")
			local whole, user, server = re.find("@([a-z]+):([a-z.]+)", "hi @bob:example.org!")
			assert(whole == "@bob:example.org" and user == "bob" and server == "example.org")
			assert(re.find("x", "abc") == nil)
			local w, a, b = re.find("(a)|(b)", "b")
			assert(w == "b" and a == false and b == "b")`},
		{name: "find_named", code: `
			local re = require("re")
			local m = re.find_named("@(?P<user>[a-z]+):(?P<server>.+)", "@bob:example.org")
			assert(m.user == "bob" and m.server == "example.org")
			assert(re.find_named("(?P<x>z)", "abc") == nil)`},
		{name: "find_all", code: `
			local re = require("re")
			local all = re.find_all("[0-9]+", "a1 b22 c333")
			assert(#all == 3 and all[1] == "1" and all[3] == "333")
			local two = re.find_all("[0-9]+", "a1 b22 c333", 2)
			assert(#two == 2)
			local pairs_ = re.find_all("(\\w)=(\\d)", "a=1,b=2")
			assert(#pairs_ == 2 and pairs_[2][1] == "b=2" and pairs_[2][2] == "b" and pairs_[2][3] == "2")
			assert(#re.find_all("x", "abc") == 0)`},
		{name: "gsub string", code: `
			local re = require("re")
			local s, n = re.gsub("(\\w+)@(\\w+)", "a@b c@d", "$2@$1")
			assert(s == "b@a d@c" and n == 2, s)
			s, n = re.gsub("(?P<u>\\w+)!", "hey! you!", "${u}?")
			assert(s == "hey? you?" and n == 2, s)
			s, n = re.gsub("o", "foo", "0", 1)
			assert(s == "f0o" and n == 1)
			s, n = re.gsub("z", "foo", "0")
			assert(s == "foo" and n == 0)`},
		{name: "gsub function", code: `
			local re = require("re")
			local s, n = re.gsub("[0-9]+", "a1 b22 c333", function(m) return "<" .. #m .. ">" end)
			assert(s == "a<1> b<2> c<3>" and n == 3, s)
			s = re.gsub("(\\w)(\\d)", "a1 b2", function(whole, l, d) if l == "a" then return d .. l end end)
			assert(s == "1a b2", s)
			s = re.gsub("x", "xx", function() return false end)
			assert(s == "xx")`},
		{name: "gsub table", code: `
			local re = require("re")
			local s = re.gsub("\\$(\\w+)", "hi $name, $unknown", {name = "Bob"})
			assert(s == "hi Bob, $unknown", s)`},
		{name: "gsub bad repl value", code: `
			local re = require("re")
			re.gsub("x", "x", function() return {} end)`, wantErr: "invalid replacement value (a table)"},
		{name: "gsub bad repl arg", code: `
			local re = require("re")
			re.gsub("x", "x", true)`, wantErr: "bad argument #3"},
		{name: "split", code: `
			local re = require("re")
			local p = re.split("\\s*,\\s*", "a , b,c")
			assert(#p == 3 and p[1] == "a" and p[2] == "b" and p[3] == "c")
			p = re.split(",", "a,b,c", 2)
			assert(#p == 2 and p[2] == "b,c")`},
		{name: "split captures", code: `
			local re = require("re")
			local function same(got, want)
			  assert(#got == #want, "length " .. #got .. ", want " .. #want)
			  for i = 1, #want do assert(got[i] == want[i], i .. ": " .. tostring(got[i]) .. ", want " .. tostring(want[i])) end
			end
			-- Python: re.split(r'(\W+)', 'Words, words.') == ['Words', ', ', 'words', '.', '']
			same(re.split("(\\W+)", "Words, words.", {captures = true}), {"Words", ", ", "words", ".", ""})
			-- a group that takes no part in the match is false (Python's None)
			same(re.split("(,)|(;)", "a,b;c", {captures = true}), {"a", ",", false, "b", false, ";", "c"})
			-- n counts pieces, as without captures: Python's maxsplit=1
			same(re.split("(-)", "a-b-c", 2, {captures = true}), {"a", "-", "b-c"})
			same(re.split("(-)", "a-b-c", {captures = true, n = 2}), {"a", "-", "b-c"})
			-- no groups: the same as without the option
			same(re.split(",", "a,b", {captures = true}), {"a", "b"})
			same(re.split("(x)", "", {captures = true}), {""})
			same(re.split("(x)", "abc", {captures = false}), {"abc"})`},
		{name: "split bad options", code: `
			local re = require("re")
			re.split(",", "a,b", {capture = true})`, wantErr: "unknown option capture"},
		{name: "split bad third argument", code: `
			local re = require("re")
			re.split(",", "a,b", "2")`, wantErr: "bad argument #3"},
		{name: "quote", code: `
			local re = require("re")
			local q = re.quote("a.b*c")
			assert(q == "a\\.b\\*c", q)
			assert(re.match("^" .. q .. "$", "a.b*c") and not re.match("^" .. q .. "$", "axbbc"))`},
		{name: "valid", code: `
			local re = require("re")
			assert(re.valid("a+") == true)
			local ok, why = re.valid("(a")
			assert(ok == false and why:find("missing closing"), why)`},
		{name: "invalid pattern", code: `
			local re = require("re")
			re.match("(abc", "abc")`, wantErr: `invalid pattern.lua:3: re: invalid pattern "(abc": missing closing )`},
		{name: "argument check", code: `
			local re = require("re")
			re.match("a", nil)`, wantErr: "bad argument #2"},
		{name: "hostile backtracking pattern is linear", code: `
			local re = require("re")
			-- exponential for a backtracking engine, linear for RE2
			assert(re.match("^(a+)+$", string.rep("a", 100000) .. "!") == false)`},
		{name: "gsub 1MB 100k matches", code: `
			local re = require("re")
			local s = string.rep("ab ", 100000) .. string.rep("c", 700000)
			assert(#s == 1000000)
			local out, n = re.gsub("ab", s, "x")
			assert(n == 100000 and #out == 900000)
			out, n = re.gsub("a(b)", s, function(m, b) return b end)
			assert(n == 100000 and #out == 900000)`},
		{name: "gsub result cap", code: `
			local re = require("re")
			re.gsub("", string.rep("a", 10000), string.rep("b", 10000))`, wantErr: "result larger than"},
	})
}

// TestReCacheBounded checks the compiled-pattern cache never exceeds its
// bound however many distinct patterns a script uses.
func TestReCacheBounded(t *testing.T) {
	L, env := newLibState(t)
	err := runChunk(L, "cache.lua", `
		local re = require("re")
		for i = 1, 1000 do assert(re.match("^x" .. i .. "$", "x" .. i)) end`)
	if err != nil {
		t.Fatal(err)
	}
	c := env.Cache("re", func() any { return nil }).(*reCache)
	if len(c.m) == 0 || len(c.m) > reCacheMax {
		t.Fatalf("cache holds %d patterns, want 1..%d", len(c.m), reCacheMax)
	}
}

// TestReGsubDeadline runs a function replacement that never returns under
// a 200 ms deadline: the call must fail with the context's error.
func TestReGsubDeadline(t *testing.T) {
	for _, tc := range []struct{ name, code string }{
		{"looping repl", `
			local re = require("re")
			local s = string.rep("ab ", 100000)
			re.gsub("ab", s, function(m) while true do end end)`},
		{"many quick calls", `
			local re = require("re")
			local s = string.rep("ab ", 100000)
			for i = 1, 1e9 do
				re.gsub("ab", s, function(m) return m end)
			end`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			L, _ := newLibState(t)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			L.SetContext(ctx)
			done := make(chan error, 1)
			go func() { done <- runChunk(L, "deadline.lua", tc.code) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
					t.Fatalf("error = %v, want one mentioning the deadline", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("re.gsub did not stop at the deadline")
			}
		})
	}
}

// TestReGsubChecksContextBetweenMatches cancels the context from inside a
// Go replacement function (Go functions run no Lua instructions, so only
// gsub's own check between matches can notice).
func TestReGsubChecksContextBetweenMatches(t *testing.T) {
	L, _ := newLibState(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	L.SetGlobal("cancel_at_10", L.NewFunction(func(L *lua.LState) int {
		calls++
		if calls == 10 {
			cancel()
		}
		L.Push(L.Get(1))
		return 1
	}))
	L.SetContext(ctx)
	err := runChunk(L, "cancel.lua", `
		local re = require("re")
		re.gsub("a", string.rep("a", 1000), cancel_at_10)`)
	if err == nil || !strings.Contains(err.Error(), "context canceled after 10 of 1000 replacements") {
		t.Fatalf("error = %v", err)
	}
}

func TestReWithoutContext(t *testing.T) {
	L, _ := newLibState(t)
	if L.Context() != nil {
		t.Fatal("expected no context")
	}
	if err := runChunk(L, "noctx.lua", `
		local re = require("re")
		local s, n = re.gsub("a", "aaa", function(m) return "b" end)
		assert(s == "bbb" and n == 3)`); err != nil {
		t.Fatal(err)
	}
}

// Without capture groups, split with captures = true gives exactly what
// regexp.Split gives, for every n, on inputs with empty matches too.
func TestReSplitCapturesMatchesRegexpSplit(t *testing.T) {
	patterns := []string{",", "a*", "x*", "", "b+", `\s*`, "$", "^"}
	inputs := []string{"", "a", "abaabaccadaaae", "a,b,,c,", " x  y ", "bbb"}
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for _, s := range inputs {
			for _, n := range []int{-1, 0, 1, 2, 3, 10} {
				want := re.Split(s, n)
				got := reSplitCaptures(re, s, n)
				if len(got) != len(want) {
					t.Errorf("split(%q, %q, %d) = %v, want %q", p, s, n, got, want)
					continue
				}
				for i := range want {
					if string(got[i].(lua.LString)) != want[i] {
						t.Errorf("split(%q, %q, %d)[%d] = %v, want %q", p, s, n, i, got[i], want[i])
					}
				}
			}
		}
	}
}
