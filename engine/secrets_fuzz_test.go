package engine

import (
	"strings"
	"testing"
)

// Whatever a config value holds, expanding it ends with a value or an
// error, and text without "${" comes back unchanged.
func FuzzExpandEnv(f *testing.F) {
	for _, s := range []string{"", "plain", "${HOME}", "$${HOME}", "a${", "${}", "${1}", "$$${HOME}}", "${HOME}${HOME", "${A-B}", "$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, vals, err := expandEnv(s)
		if !strings.Contains(s, "${") && (out != s || err != nil || vals != nil) {
			t.Fatalf("expandEnv(%q) = %q, %v, %v; want it unchanged", s, out, vals, err)
		}
		if err == nil && strings.Count(s, "${")-strings.Count(s, "$${") > len(vals) {
			t.Fatalf("expandEnv(%q): %d variables used for %q", s, len(vals), s)
		}
	})
}
