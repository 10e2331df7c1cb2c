package lint_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/luahost/luahost/internal/lint"
)

// nest builds n levels of open ... inner ... close.
func nest(n int, open, inner, close string) []byte {
	return []byte(strings.Repeat(open, n) + inner + strings.Repeat(close, n))
}

// FuzzCheck: no input crashes or hangs Check; a failure is a syntax error
// or a depth error naming the chunk; warnings point inside the file and
// come back the same on a second run.
func FuzzCheck(f *testing.F) {
	for _, seed := range [][]byte{
		[]byte("local f = io.open('x')\nprint(os.getenv('HOME'))\n"),
		[]byte("count = 0\nfunction helper() count = count + 1 end\n"),
		[]byte("tabel.insert({}, string.fromat('%d', 1))\n"),
		[]byte("local M = {}\nfunction M.new(config, api)\n  api.store:gett('k')\n  api.get_profile_for_usr('a')\nend\nreturn M\n"),
		[]byte("local api = require('module_api')\nlocal a = api\na.bogus = a.Codes.NOPE\n"),
		[]byte("x = 1 -- luahost:ignore global-wirte\n-- luahost:ignore\ny = 2\n"),
		[]byte("local s = [==[\n-- luahost:ignore\n]==] --[[ ]] print(zzz) -- luahost:ignore undefined-global -- why\n"),
		[]byte("repeat local d = 1 until d\nfor i = 1, 2 do local function f(...) return arg, i end end\n"),
		[]byte("local x = 1e"),
		[]byte("local x = 1\r\n\n\rprint(y)\n\r"),
		[]byte("if x then"),
		[]byte("local = 1"),
		[]byte("goto l ::l::"),
		[]byte("return { new = function(c, a) a:x() end }"),
		[]byte("local t = " + string(nest(10000, "{", "", "}"))),
		[]byte("local t = " + string(nest(10000, "(", "x", ")"))),
		[]byte("local t = " + string(nest(10000, "f(", "", ")"))),
		[]byte("local t = " + string(nest(10000, "{{", "", "}}"))),
		nest(10000, "do ", "", " end "),
		nest(10000, "local function f() ", "", " end "),
		[]byte("local t = " + strings.Repeat("-", 10000) + "1"),
		[]byte("local s = 'a'" + strings.Repeat(" .. x", 10000)),
		[]byte("if a then" + strings.Repeat(" elseif a then", 10000) + " end"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		ws, err := lint.Check(src, "fuzz.lua", testEnv)
		if err != nil {
			if strings.Contains(err.Error(), "internal error") || !strings.HasPrefix(err.Error(), "fuzz.lua:") {
				t.Fatalf("error: %v", err)
			}
			if ws != nil {
				t.Fatalf("warnings with an error: %v", ws)
			}
			return
		}
		lines := bytes.Count(src, []byte("\n")) + bytes.Count(src, []byte("\r")) + 1
		for _, w := range ws {
			if w.File != "fuzz.lua" || w.Line < 1 || w.Line > lines || w.Column < 0 || w.Msg == "" || !known(w.Code) {
				t.Fatalf("bad warning %+v", w)
			}
		}
		again, err := lint.Check(src, "fuzz.lua", testEnv)
		if err != nil || !reflect.DeepEqual(ws, again) {
			t.Fatalf("second run differs: %v, %v / %v", err, ws, again)
		}
	})
}

func known(code string) bool {
	for _, c := range lint.Codes() {
		if c == code {
			return true
		}
	}
	return false
}

// The walker gives up long before the Go stack could: 20,000 levels of
// nesting of every kind is a depth error at the first line (most of the
// time goes to gopher-lua's parser, which the loader runs anyway).
func TestFarTooDeep(t *testing.T) {
	for _, src := range [][]byte{
		[]byte("local t = " + string(nest(20000, "{", "", "}"))),
		[]byte("local t = " + string(nest(20000, "f(", "", ")"))),
		nest(20000, "do ", "", " end "),
		nest(20000, "while x do ", "", " end "),
		nest(20000, "local f = function() ", "", " end "),
	} {
		_, err := lint.Check(src, "deep.lua", testEnv)
		if err == nil || !strings.HasPrefix(err.Error(), "deep.lua:1: nested deeper than 200 levels") {
			t.Errorf("%.30s...: err = %v", src, err)
		}
	}
}
