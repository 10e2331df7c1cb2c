package sandbox

import (
	"strings"
	"testing"
	"testing/fstest"
)

// A builtin passed straight to pcall raised its error at the engine's
// pcall helper ("<string>:3: json.decode: ...", "bad argument #1 to
// fn"); a stack overflow said "lua callstack overflow" with no line.
// Each now names the script's file and line, and the function.
func TestErrorsPointAtTheScript(t *testing.T) {
	cases := []struct{ src, want string }{
		{`local ok, e = pcall(json.decode, "x") return e`, "t.lua:1: json.decode: invalid character 'x' looking for a value at offset 0"},
		{`local ok, e = pcall(string.rep) return e`, "t.lua:1: bad argument #1 to string.rep (string expected, got "},
		{`local ok, e = pcall(error) return e`, "t.lua:1: bad argument #1 to error (value expected)"},
		{`local ok, e = xpcall(string.rep, function(m) return "handled: " .. m end) return e`, "handled: t.lua:1: bad argument #1 to string.rep"},
		{"local function f() return f() + 1 end\nlocal ok, e = pcall(f) return e", "t.lua:1: stack overflow (more than 1024 nested calls)"},
		{"local function g(n)\n  return 1 + g(n)\nend\nlocal ok, e = pcall(g, 1) return e", "t.lua:2: stack overflow"},
		{`local ok, e = pcall(function() local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x end) return e`, "t.lua:1: stack overflow"},
		{`local ok, e = pcall(require, ("x"):rep(1000)) return e`, "... (1000 bytes)"},
	}
	for _, tc := range cases {
		L := NewState()
		(&Loader{FS: fstest.MapFS{}, Dir: "."}).Install(L)
		if err := L.DoString(`json = require("json")`); err != nil {
			t.Fatal(err)
		}
		proto, err := Compile([]byte(tc.src), "t.lua")
		if err != nil {
			t.Fatal(err)
		}
		L.Push(L.NewFunctionFromProto(proto))
		if err := L.PCall(0, 1, nil); err != nil {
			t.Errorf("%s: %v", tc.src, err)
			L.Close()
			continue
		}
		got := L.Get(-1).String()
		if !strings.HasPrefix(got, tc.want) && !strings.Contains(got, tc.want) {
			t.Errorf("%s\n got %.400q\nwant %q", tc.src, got, tc.want)
		}
		if strings.Contains(got, "<") || len(got) > 800 {
			t.Errorf("%s: %.400q points at the engine or echoes too much (%d bytes)", tc.src, got, len(got))
		}
		L.Close()
	}
}
