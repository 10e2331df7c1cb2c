package embedding

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every ```go block of the embedding guides is a run of lines of code that
// compiles (with leading white space and a trailing " {" ignored, so a
// signature may stand alone): docs/embedding.md's come from snippets.go or
// the engine's own source; docs/embedding-dendrite.md's from the glue that
// tests/dendrite/run.sh builds into Dendrite, and its ```diff blocks from
// the hook patch. A block whose first line is "// not checked: why" is
// skipped.
func TestDocsGoBlocks(t *testing.T) {
	engineSources, _ := filepath.Glob("../../engine/*.go")
	var engineFiles []string
	for _, f := range engineSources {
		if !strings.HasSuffix(f, "_test.go") {
			engineFiles = append(engineFiles, f)
		}
	}
	pages := []struct {
		page    string
		lang    string
		sources []string
		min     int // blocks the page must have, so a renamed fence cannot pass silently
	}{
		{"../../docs/embedding.md", "go", append([]string{"snippets.go"}, engineFiles...), 10},
		{"../../docs/embedding-dendrite.md", "go", []string{"../dendrite/testdata/luahost_glue.go"}, 5},
		{"../../docs/embedding-dendrite.md", "diff", []string{"../dendrite/testdata/hooks.patch"}, 3},
	}
	for _, p := range pages {
		text, err := os.ReadFile(p.page)
		if err != nil {
			t.Fatal(err)
		}
		var sources [][]string
		for _, s := range p.sources {
			b, err := os.ReadFile(s)
			if err != nil {
				t.Fatal(err)
			}
			sources = append(sources, normalise(string(b)))
		}
		n := 0
		for _, b := range fenced(string(text), p.lang) {
			if strings.HasPrefix(strings.TrimSpace(b.code), "// not checked:") {
				continue
			}
			n++
			want := normalise(b.code)
			found := false
			for _, src := range sources {
				found = found || containsRun(src, want)
			}
			if !found {
				t.Errorf("%s:%d: this ```%s block is not a run of lines of %s:\n%s",
					strings.TrimPrefix(p.page, "../../"), b.line, p.lang, strings.Join(p.sources[:1], ", "), b.code)
			}
		}
		if n < p.min {
			t.Errorf("%s: only %d checked ```%s blocks, want at least %d", p.page, n, p.lang, p.min)
		}
	}
}

type block struct {
	line int
	code string
}

// fenced returns the ```lang blocks of a Markdown page, indented ones too.
func fenced(text, lang string) []block {
	var out []block
	var cur *block
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```"+lang:
			cur = &block{line: i + 2}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		}
	}
	return out
}

// normalise trims each line and drops a trailing " {", and empty lines.
func normalise(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimSpace(strings.TrimSuffix(l, " {"))
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func containsRun(src, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for i := 0; i+len(want) <= len(src); i++ {
		match := true
		for j := range want {
			if src[i+j] != want[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
