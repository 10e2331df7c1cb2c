package stdlib

import (
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// BenchmarkReMatch and BenchmarkStringFind run the same test with an
// equivalent pattern on the same input, from Lua, so their ratio is the
// cost of using re instead of Lua patterns. Each iteration is one call of a
// Lua function (fixed CallByParam overhead on both sides).

var benchCases = []struct {
	name, input string
	re, lua     string
}{
	{
		name:  "user_id",
		input: "@alice.smith_99:matrix.example.org",
		re:    `^@[a-z0-9._=/-]+:[a-zA-Z0-9.-]+$`,
		lua:   `^@[a-z0-9._=/%-]+:[a-zA-Z0-9.%-]+$`,
	},
	{
		// An unanchored search for a word near the end of a 1 KiB body.
		name:  "word_in_1KiB",
		input: strings.Repeat("lorem ipsum dolor sit amet ", 38) + "buy cheap pills now",
		re:    `cheap pills`,
		lua:   `cheap pills`,
	},
	{
		// A class-heavy search: a URL anywhere in a 1 KiB body.
		name:  "url_in_1KiB",
		input: strings.Repeat("lorem ipsum dolor sit amet ", 38) + "see https://spam.example/x",
		re:    `https?://[a-z0-9.-]+/`,
		lua:   `https?://[a-z0-9.%-]+/`,
	},
}

func benchLua(b *testing.B, fnSrc string, pattern, input string) {
	L, _ := newLibState(b)
	if err := runChunk(L, "bench.lua", fnSrc); err != nil {
		b.Fatal(err)
	}
	fn := L.Get(-1)
	L.Pop(1)
	p, s := lua.LString(pattern), lua.LString(input)
	// Sanity: both sides must find a match.
	if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, p, s); err != nil {
		b.Fatal(err)
	}
	if !lua.LVAsBool(L.Get(-1)) {
		b.Fatalf("pattern %q does not match", pattern)
	}
	L.Pop(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, p, s); err != nil {
			b.Fatal(err)
		}
		L.Pop(1)
	}
}

func BenchmarkReMatch(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			benchLua(b, `local re = require("re")
				return function(p, s) return re.match(p, s) end`, c.re, c.input)
		})
	}
}

func BenchmarkStringFind(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			benchLua(b, `local find = string.find
				return function(p, s) return find(s, p) ~= nil end`, c.lua, c.input)
		})
	}
}
