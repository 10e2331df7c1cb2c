package stdlib

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

type docBlock struct {
	name string // "## section / ### title #n", for the subtest
	line int    // line of the opening fence in the page
	code string
}

// docBlocks returns every ```lua block of a markdown page.
func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var section, title string
	var cur *docBlock
	n := 0
	for i, line := range strings.Split(string(src), "\n") {
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		case strings.HasPrefix(line, "```lua"):
			n++
			cur = &docBlock{name: fmt.Sprintf("%s/%s#%d", section, title, n), line: i + 1}
		case strings.HasPrefix(line, "## "):
			section, title, n = strings.TrimPrefix(line, "## "), "", 0
		case strings.HasPrefix(line, "### "):
			title, n = strings.TrimPrefix(line, "### "), 0
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated ```lua block", path, cur.line)
	}
	return blocks
}

var requireRe = regexp.MustCompile(`require\("([a-z_]+)"\)`)

// TestDocsExamples runs every Lua example of docs/stdlib.md; each ends
// with asserts on its result.
func TestDocsExamples(t *testing.T) {
	blocks := docBlocks(t, "../docs/stdlib.md")
	if len(blocks) < 40 {
		t.Fatalf("found only %d lua blocks", len(blocks))
	}
	for _, b := range blocks {
		t.Run(b.name, func(t *testing.T) {
			for _, m := range requireRe.FindAllStringSubmatch(b.code, -1) {
				if _, ok := Lookup(m[1]); !ok {
					if m[1] == "json" {
						t.Skip("json library not yet registered")
					}
					t.Fatalf("docs/stdlib.md:%d: requires unknown library %q", b.line, m[1])
				}
			}
			L, _ := newLibState(t)
			// Offset the chunk so error lines are the page's lines.
			code := strings.Repeat("\n", b.line) + b.code
			if err := runChunk(L, "stdlib.md", code); err != nil {
				t.Fatalf("docs/stdlib.md:%d: %v", b.line, err)
			}
		})
	}
}

// TestDocsCoverEveryFunction fails when a library function is missing
// from docs/stdlib.md or from the LuaLS stubs in types/stdlib.lua.
func TestDocsCoverEveryFunction(t *testing.T) {
	docs, err := os.ReadFile("../docs/stdlib.md")
	if err != nil {
		t.Fatal(err)
	}
	stubs, err := os.ReadFile("types/stdlib.lua")
	if err != nil {
		t.Fatal(err)
	}
	stubState, _ := newLibState(t)
	if _, err := stubState.LoadString(string(stubs)); err != nil {
		t.Fatalf("types/stdlib.lua does not parse: %v", err)
	}
	for _, name := range Names() {
		if !strings.Contains(string(docs), "\n## "+name+"\n") {
			t.Errorf("docs/stdlib.md has no \"## %s\" section", name)
		}
		L, env := newLibState(t)
		load, _ := Lookup(name)
		lib, ok := load(L, env).(*lua.LTable)
		if !ok {
			t.Fatalf("library %s is not a table", name)
		}
		lib.ForEach(func(k, v lua.LValue) {
			key := name + "." + k.String()
			if !strings.Contains(string(docs), key) {
				t.Errorf("docs/stdlib.md does not mention %s", key)
			}
			var stub string
			if v.Type() == lua.LTFunction {
				stub = "function " + key + "("
			} else {
				stub = key + " = "
			}
			if !strings.Contains(string(stubs), stub) {
				t.Errorf("types/stdlib.lua has no %q", stub)
			}
		})
	}
}
