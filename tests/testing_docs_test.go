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
	"github.com/luahost/luahost/luaapi"
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

// Every member of module_api, as luaapi lists it (the list the LuaLS stubs
// and "did you mean" use, checked against the real table by the engine's
// tests), is documented: each function other than the register_*
// functions (one page per category) and api.store's (storage.md) has a
// `### api.name` section in docs/module_api.md, and every other member is
// named somewhere in docs/.
func TestEveryAPIMemberIsDocumented(t *testing.T) {
	page := filepath.Join(docsDir, "module_api.md")
	text := readDoc(t, page)
	var all strings.Builder
	_ = filepath.WalkDir(docsDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			b, _ := os.ReadFile(path)
			all.Write(b)
		}
		return err
	})
	for _, m := range luaapi.APIMembers() {
		names := []string{m.Name}
		if m.Kind == luaapi.MemberTable {
			for _, sub := range m.Members {
				names = append(names, m.Name+"."+sub.Name)
			}
		}
		for i, name := range names {
			isFn := m.Kind == luaapi.MemberFunction || (i > 0 && m.Members[i-1].Kind == luaapi.MemberFunction)
			heading := regexp.MustCompile(`(?m)^### api\.` + regexp.QuoteMeta(name) + `\b`)
			switch {
			case m.Name == "Codes" || m.Name == "RegistrationBehaviour":
				if i == 0 && !strings.Contains(all.String(), "api."+name) {
					t.Errorf("docs/ never mention api.%s", name)
				}
			case isFn && i == 0 && !strings.HasPrefix(name, "register_"):
				if !heading.MatchString(text) {
					t.Errorf("%s: no `### api.%s` section", shown(page), name)
				}
			case isFn:
				// A table's function: named in the docs (api.store.get in
				// storage.md, from_string in the UserID section).
				member := name[strings.LastIndexByte(name, '.')+1:]
				called := regexp.MustCompile(`\b` + regexp.QuoteMeta(member) + `\(`)
				if !strings.Contains(all.String(), "api."+name) && !called.MatchString(all.String()) {
					t.Errorf("docs/ never mention api.%s", name)
				}
			default:
				if !strings.Contains(all.String(), "api."+name) {
					t.Errorf("docs/ never mention api.%s", name)
				}
			}
		}
	}
}
