package lint_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/luahost/luahost/internal/lint"
)

// Every shipped example lints clean against what a module really sees.
func TestShippedExamplesLintClean(t *testing.T) {
	env := realEnv(t)
	var files []string
	for _, root := range []string{"../../scripts/examples", "../../examples"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".lua") {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 10 {
		t.Fatalf("found only %d example scripts: %v", len(files), files)
	}
	applied := map[string]int{}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ws, err := lint.Check(src, file, env)
		if err != nil {
			t.Errorf("%v", err)
		}
		for _, w := range ws {
			t.Errorf("%v", w)
		}
		// A clean result must come from checking, not from seeing nothing:
		// each planted mistake is found in every example.
		for _, m := range mutations {
			if !strings.Contains(string(src), m.from) {
				continue
			}
			applied[m.to]++
			bad := strings.Replace(string(src), m.from, m.to, 1)
			ws, err := lint.Check([]byte(bad), file, env)
			if err != nil {
				t.Errorf("%s with %q: %v", file, m.to, err)
				continue
			}
			if len(ws) != 1 || ws[0].Code != m.code || !strings.Contains(ws[0].Msg, m.msg) {
				t.Errorf("%s with %q: got %v, want one %s containing %q", file, m.to, ws, m.code, m.msg)
			}
		}
	}
	for _, m := range mutations {
		if applied[m.to] == 0 {
			t.Errorf("no example contains %q to plant %q in", m.from, m.to)
		}
	}
	t.Logf("planted mistakes (found in each file): %v", applied)
}

var mutations = []struct{ from, to, code, msg string }{
	{"api.register_", "api.regster_", lint.CodeUnknownAPIMember, "(did you mean api.register_"},
	{"local M = {}", "M = {}", lint.CodeGlobalWrite, `assignment to global "M"`},
	{" ipairs(", " iparis(", lint.CodeUndefinedGlobal, "iparis is not defined (did you mean ipairs?)"},
	{"table.", "tabel.", lint.CodeUndefinedGlobal, "tabel is not defined (did you mean table?)"},
	{"math.floor(", "os.getenv(", lint.CodeSandboxGlobal, "os.getenv is not available"},
	{"error(", "io.write(", lint.CodeSandboxGlobal, "io is not available"},
	{"api.store.", "api.stroe.", lint.CodeUnknownAPIMember, "api.stroe is not a module_api member (did you mean api.store?)"},
	{"api.Codes.", "api.Codes.X", lint.CodeUnknownAPIMember, "api.Codes.X"},
}

// The whole modules in docs/ (blocks with a top-level `return M`; the
// other blocks are fragments of a callback) lint clean too.
func TestDocModulesLintClean(t *testing.T) {
	env := realEnv(t)
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("../../docs/*/*.md")
	modules := 0
	for _, page := range append(pages, more...) {
		src, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		var block []string
		in, start := false, 0
		for i, line := range strings.Split(string(src), "\n") {
			switch {
			case !in && strings.TrimSpace(line) == "```lua":
				in, start, block = true, i+2, nil
			case in && strings.TrimSpace(line) == "```":
				in = false
				if !hasLine(block, "return M") {
					continue
				}
				modules++
				// Padded so that warnings carry the page's line numbers.
				code := strings.Repeat("\n", start-1) + strings.Join(block, "\n")
				ws, err := lint.Check([]byte(code), page, env)
				if err != nil {
					t.Errorf("%v", err)
				}
				for _, w := range ws {
					t.Errorf("%v", w)
				}
			case in:
				block = append(block, line)
			}
		}
	}
	if modules < 10 {
		t.Errorf("found only %d whole modules in docs/", modules)
	}
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if strings.TrimRight(l, " \t") == want {
			return true
		}
	}
	return false
}
