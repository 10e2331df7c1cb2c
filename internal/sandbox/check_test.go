package sandbox

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// nesting is a source nested n deep in one construct:
// pre + open*n + mid + close*n.
type nesting struct {
	name                  string
	pre, open, mid, close string
	// lua51 is the deepest n reference Lua 5.1 accepts from a loadstring
	// call in a script run by lua5.1, where the call itself takes two
	// levels: a fresh compile accepts two levels more.
	lua51 int
	// each is how many levels one repetition takes.
	each int
}

func (c nesting) src(n int) string {
	return c.pre + strings.Repeat(c.open, n) + c.mid + strings.Repeat(c.close, n)
}

var nestings = []nesting{
	{"tables", "return ", "{", "", "}", 197, 1},
	{"parentheses", "return ", "(", "1", ")", 196, 1},
	{"call arguments", "return ", "f(", "", ")", 197, 1},
	{"call statement", "", "f(", "", ")", 198, 1},
	{"do blocks", "", "do ", "", " end", 197, 1},
	{"if blocks", "", "if x then ", "", " end", 197, 1},
	{"while blocks", "", "while x do ", "", " end", 197, 1},
	{"function bodies", "return ", "function() return ", "1", " end", 98, 2},
	{"concatenation", "return ", `"a"..`, `"b"`, "", 196, 1},
	{"powers", "return ", "2^", "1", "", 196, 1},
	{"unary minus", "return ", "- ", "1", "", 196, 1},
	{"not", "return ", "not ", "1", "", 196, 1},
	{"indexing", "return ", "a[", "1", "]", 196, 1},
	{"table fields", "return ", "{x=", "1", "}", 196, 1},
}

// The nesting limit is reference Lua 5.1's, construct by construct: one
// level deeper than Lua accepts is a syntax error at the file and line.
func TestNestingLimitIsLua51s(t *testing.T) {
	lua51, _ := exec.LookPath("lua5.1")
	if lua51 == "" {
		t.Log("lua5.1 is not installed: checking against the recorded reference limits only")
	}
	for _, tc := range nestings {
		t.Run(tc.name, func(t *testing.T) {
			if lua51 != "" {
				// Keep the recorded limits honest against the reference.
				script := fmt.Sprintf(`local function mk(n) return %q .. (%q):rep(n) .. %q .. (%q):rep(n) end
					for n = 1, 300 do if not loadstring(mk(n)) then print(n - 1) return end end print(-1)`,
					tc.pre, tc.open, tc.mid, tc.close)
				out, err := exec.Command(lua51, "-e", script).Output()
				if err != nil {
					t.Fatalf("lua5.1: %v", err)
				}
				if got, _ := strconv.Atoi(strings.TrimSpace(string(out))); got != tc.lua51 {
					t.Fatalf("reference lua5.1 accepts %d levels, the table says %d", got, tc.lua51)
				}
			}
			ok := tc.lua51 + 2/tc.each
			if _, err := Compile([]byte(tc.src(ok)), "deep.lua"); err != nil {
				t.Errorf("%d levels (Lua 5.1 accepts them): %v", ok, err)
			}
			_, err := Compile([]byte(tc.src(ok+1)), "deep.lua")
			if err == nil || !strings.HasPrefix(err.Error(), "deep.lua:1: chunk has too many syntax levels") {
				t.Errorf("%d levels: want deep.lua:1: chunk has too many syntax levels, got %v", ok+1, err)
			}
		})
	}
}

// 201 levels are refused, 199 pass, whichever way the source arrives: a
// module file, loadstring, load or require.
func TestNestingIsCheckedEverywhere(t *testing.T) {
	deep := func(n int) string { return "return " + strings.Repeat("{", n) + strings.Repeat("}", n) }
	L := NewState()
	defer L.Close()
	ld := &Loader{FS: fstest.MapFS{
		"ok.lua":   {Data: []byte(deep(199))},
		"deep.lua": {Data: []byte("local x = 1\n" + deep(201))},
	}, Dir: "."}
	ld.Install(L)
	L.SetGlobal("ok_src", lua.LString(deep(199)))
	L.SetGlobal("deep_src", lua.LString(deep(201)))
	err := L.DoString(`
		assert(type(loadstring(ok_src)()) == "table")
		local f, msg = loadstring(deep_src, "=deep")
		assert(f == nil and msg:find("^deep:1: chunk has too many syntax levels"), msg)
		local parts, i = {deep_src:sub(1, 100), deep_src:sub(101)}, 0
		f, msg = load(function() i = i + 1 return parts[i] end)
		assert(f == nil and msg:find("^%(load%):1: chunk has too many syntax levels"), msg)
		assert(type(require("ok")) == "table")
		local ok, err = pcall(require, "deep")
		assert(not ok and err:find("deep.lua:2: chunk has too many syntax levels", 1, true), err)
	`)
	if err != nil {
		t.Fatal(err)
	}
}

// A million levels of anything is a clean error, found before gopher-lua
// parses (seconds and ~500 MB at this depth) or compiles (a fatal Go stack
// overflow) the source.
func TestMillionLevelsDoNotCrash(t *testing.T) {
	const n = 1000000
	cases := []struct{ name, src, want string }{
		{"tables", "return " + strings.Repeat("{", n) + strings.Repeat("}", n), "too many syntax levels"},
		{"parentheses", "return " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n), "too many syntax levels"},
		{"calls", strings.Repeat("f(", n) + strings.Repeat(")", n), "too many syntax levels"},
		{"functions", strings.Repeat("function f() ", n) + strings.Repeat("end ", n), "too many syntax levels"},
		{"blocks", strings.Repeat("do ", n) + strings.Repeat("end ", n), "too many syntax levels"},
		{"concatenation", "return " + strings.Repeat("x..", n) + "x", "too many syntax levels"},
		{"unary", "return " + strings.Repeat("- ", n) + "x", "too many syntax levels"},
		{"sums", "return " + strings.Repeat("x+", n) + "x", "expression too complex"},
		{"field chain", "return x" + strings.Repeat(".y", n), "expression too complex"},
		{"call chain", "return f" + strings.Repeat("()", n), "expression too complex"},
		{"elseif chain", "if x then " + strings.Repeat("elseif x then ", n) + "end", "expression too complex"},
		{"unclosed", "return " + strings.Repeat("{", n), "too many syntax levels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Compile([]byte(tc.src), "hostile.lua")
			if err == nil || !strings.HasPrefix(err.Error(), "hostile.lua:1: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want hostile.lua:1: ...%s, got %v", tc.want, err)
			}
			t.Logf("%d bytes refused in %s", len(tc.src), time.Since(start))
		})
	}
}

// gopher-lua's compiler looks constants up by a linear scan: a function
// with hundreds of thousands of distinct constants compiles for many
// minutes. Such a function is refused at once; a large but ordinary data
// table still compiles.
func TestCompileWorkIsBounded(t *testing.T) {
	table := func(n int) string {
		var b strings.Builder
		b.WriteString("return {")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "%d,", i)
		}
		b.WriteString("}")
		return b.String()
	}
	if _, err := Compile([]byte(table(2000)), "data.lua"); err != nil {
		t.Errorf("a 2000-entry table: %v", err)
	}
	start := time.Now()
	_, err := Compile([]byte(table(260000)), "data.lua")
	if err == nil || !strings.Contains(err.Error(), "too many distinct constants") {
		t.Fatalf("want too many distinct constants, got %v", err)
	}
	t.Logf("refused in %s", time.Since(start))
	var labels strings.Builder
	for i := 0; i < 200000; i++ {
		fmt.Fprintf(&labels, "::l%d:: ", i)
	}
	if _, err := Compile([]byte(labels.String()), "labels.lua"); err == nil || !strings.Contains(err.Error(), "too large to compile") {
		t.Fatalf("200k labels in a row: want too large to compile, got %v", err)
	}
}

// loadstring refuses sources over MaxLoadSource and, for large ones,
// returns at the call's deadline even while the source is still parsing.
func TestLoadstringLimits(t *testing.T) {
	L := NewState()
	defer L.Close()
	if err := L.DoString(`
		local f, msg = loadstring(("-"):rep(17 * 1024 * 1024))
		assert(f == nil and msg:find("larger than the 16 MiB limit", 1, true), msg)
		local i = 0
		f, msg = load(function() i = i + 1 if i < 20 then return ("x"):rep(1024 * 1024) end end)
		assert(f == nil and msg:find("larger than 16 MiB", 1, true), msg)
		f, msg = loadstring("x = ")
		assert(f == nil and msg:find('^%[string "x = "%]:1:'), msg)
		f, msg = loadstring("error('boom')")
		local ok, err = pcall(f)
		assert(not ok and err:find('^%[string "error%(\'boom\'%)"%]:1: boom'), err)
	`); err != nil {
		t.Fatal(err)
	}
	// ~8 MiB of statements: gopher-lua parses it in ~10 s.
	L.SetGlobal("big", lua.LString(strings.Repeat("local x = y + 1\n", 500000)))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	L.SetContext(ctx)
	start := time.Now()
	err := L.DoString(`loadstring(big)`)
	took := time.Since(start)
	L.RemoveContext()
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("want the deadline to end loadstring, got %v", err)
	}
	t.Logf("loadstring of %d bytes ended %s after a 200ms deadline", 500000*16, took-200*time.Millisecond)
	// The abandoned compile ends soon (its context has ended too).
	poolOf(L).compiling <- struct{}{}
	<-poolOf(L).compiling
}

// The check follows gopher-lua's grammar where it is looser than Lua
// 5.1's: a source gopher-lua accepts must pass the check (else it would
// be refused as "a luahost bug"). FuzzCompile searches for more.
func TestCheckFollowsGopherLuasGrammar(t *testing.T) {
	for _, src := range []string{
		"return {1,,2}", "return {1;;2,}", ";;; local x = 1;;", "return;",
		"for i = 1, 3 do if i == 2 then goto continue end ::continue:: end",
		"local function f(a, b, ...) return ... end", "local t = {} function t.a.b:c() end",
		"return f{1}:g'x'[1].y", "while true do break end", "return -2^-2, not not nil, #'x' .. 1",
	} {
		if _, err := Compile([]byte(src), "g.lua"); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}
