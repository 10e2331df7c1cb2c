package lint_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/luahost/luahost/internal/lint"
)

// BenchmarkCheck lints each shipped example; the baselines are what the
// loader already does with the same bytes (parse, and parse + compile),
// so the cost of linting reads as a ratio to them.
func BenchmarkCheck(b *testing.B) {
	files, err := filepath.Glob("../../scripts/examples/*/*.lua")
	if err != nil || len(files) == 0 {
		b.Fatalf("examples: %v", err)
	}
	var srcs [][]byte
	size := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, src)
		size += len(src)
	}
	env := realEnv(b)
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(size))
		for i := 0; i < b.N; i++ {
			for _, src := range srcs {
				if _, err := parse.Parse(bytes.NewReader(src), "x.lua"); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("parse+compile", func(b *testing.B) {
		b.SetBytes(int64(size))
		for i := 0; i < b.N; i++ {
			for _, src := range srcs {
				chunk, err := parse.Parse(bytes.NewReader(src), "x.lua")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := lua.Compile(chunk, "x.lua"); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(size))
		for i := 0; i < b.N; i++ {
			for _, src := range srcs {
				if _, err := lint.Check(src, "x.lua", env); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkCheckHostile: a file of 20,000 fresh locals and misspellings
// (every read undefined, every scope different) against parsing it alone.
func BenchmarkCheckHostile(b *testing.B) {
	var buf bytes.Buffer
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&buf, "local value_%d = 1 print(valeu_%d)\n", i, i)
	}
	src := buf.Bytes()
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for i := 0; i < b.N; i++ {
			if _, err := parse.Parse(bytes.NewReader(src), "x.lua"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for i := 0; i < b.N; i++ {
			if _, err := lint.Check(src, "x.lua", testEnv); err != nil {
				b.Fatal(err)
			}
		}
	})
}
