package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/luahost/luahost/cmd/luahost/luatest"
	"github.com/luahost/luahost/cmd/luahost/memhost"
)

// docs/testing.md's examples run: each fenced block right after a line
// `<!-- file: NAME -->` is (a part of) that file; the files are written
// out together, every *_test.lua among them passes under luahost test, and
// every JSON fixture seeds the in-memory homeserver.
func TestTestingDocExamplesRun(t *testing.T) {
	page := filepath.Join(docsDir, "testing.md")
	files := docFiles(t, page)
	if len(files) < 3 {
		t.Fatalf("%s: found only %d marked files", shown(page), len(files))
	}
	dir := t.TempDir()
	var tests []string
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(name, "_test.lua"):
			tests = append(tests, path)
		case strings.HasSuffix(name, ".json"):
			f, err := memhost.ParseFixture([]byte(text))
			if err == nil {
				err = memhost.New("example.org").Seed(f)
			}
			if err != nil {
				t.Errorf("%s: %s does not seed: %v", shown(page), name, err)
			}
		}
	}
	if len(tests) == 0 {
		t.Fatalf("%s: no *_test.lua file among its examples", shown(page))
	}
	var out bytes.Buffer
	sum := luatest.Run(tests, luatest.Options{Stdout: &out})
	if sum.Failed > 0 || sum.Passed < 5 {
		t.Errorf("%s: the example tests: %d passed, %d failed:\n%s", shown(page), sum.Passed, sum.Failed, out.String())
	}
}

var fileMarker = regexp.MustCompile(`^<!-- file: (\S+) -->$`)

// docFiles collects the marked blocks of a page by file name.
func docFiles(t *testing.T, page string) map[string]string {
	t.Helper()
	files := map[string]string{}
	lines := strings.Split(readDoc(t, page), "\n")
	for i := 0; i < len(lines); i++ {
		m := fileMarker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Errorf("%s:%d: a file marker must be right above a ``` block", shown(page), i+1)
			continue
		}
		var b strings.Builder
		j := i + 2
		for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
			b.WriteString(lines[j] + "\n")
		}
		files[m[1]] += b.String()
		i = j
	}
	return files
}
