package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzCompile: compiling any source ends with a prototype or an error,
// never a crash (a Go stack overflow kills the process, so the fuzzer
// itself would die); and the nesting check follows gopher-lua's grammar:
// when it cannot, gopher-lua must refuse the source too. The seeds in
// testdata/fuzz/FuzzCompile hold the hostile sources.
func FuzzCompile(f *testing.F) {
	f.Add([]byte("return " + strings.Repeat("{", 201) + strings.Repeat("}", 201)))
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 1<<16 {
			return
		}
		_, err := Compile(src, "f.lua")
		if err != nil && strings.Contains(err.Error(), "luahost bug") {
			t.Fatalf("the nesting check and the parser disagree on %q", src)
		}
		if cerr := checkSource(context.Background(), src, "f.lua"); cerr != nil && !errors.Is(cerr, errCheckSyntax) && err == nil {
			t.Fatalf("the check refused %q (%v) but Compile accepted it", src, cerr)
		}
	})
}
