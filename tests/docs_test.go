package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
)

// The docs are checked against the code: each callback page's reference
// table is generated from the catalogue, every catalogue callback has its
// own section (and no section documents a callback that does not exist),
// the index links every page, and every Lua example in the docs compiles,
// or loads through the engine when it is a whole module.
//
// After changing the catalogue, regenerate the tables with
//
//	UPDATE_DOCS=1 go test ./tests/ -run TestDocsReferenceTables

const (
	docsDir      = "../docs"
	tableBegin   = "<!-- catalogue:begin -->"
	tableEnd     = "<!-- catalogue:end -->"
	notChecked   = "-- not checked"
	configPrefix = "-- config:"
)

func categoryPage(category string) string {
	return filepath.Join(docsDir, "callbacks", category+".md")
}

// shown is a docs path as the repository names it, for messages.
func shown(path string) string {
	return strings.TrimPrefix(filepath.ToSlash(path), "../")
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (every callback category needs its page)", err)
	}
	return string(b)
}

func TestDocsReferenceTables(t *testing.T) {
	update := os.Getenv("UPDATE_DOCS") == "1"
	for _, cat := range luaapi.Catalogue {
		page := categoryPage(cat.Name)
		text := readDoc(t, page)
		begin := strings.Index(text, tableBegin)
		end := strings.Index(text, tableEnd)
		if begin < 0 || end < begin {
			t.Errorf("%s: no %s ... %s markers around the reference table", shown(page), tableBegin, tableEnd)
			continue
		}
		got := strings.TrimPrefix(text[begin+len(tableBegin):end], "\n")
		want := luaapi.ReferenceTable(cat.Name)
		if got == want {
			continue
		}
		if update {
			text = text[:begin+len(tableBegin)] + "\n" + want + text[end:]
			if err := os.WriteFile(page, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: reference table rewritten", shown(page))
			continue
		}
		t.Errorf("%s: the reference table is stale (regenerate with UPDATE_DOCS=1 go test ./tests/ -run TestDocsReferenceTables):\n%s",
			shown(page), lineDiff(got, want))
	}
}

// lineDiff lists the lines only in got (-) and only in want (+).
func lineDiff(got, want string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			m[l]++
		}
		return m
	}
	g, w := count(got), count(want)
	var out []string
	for _, l := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
		if w[l] > 0 {
			w[l]--
			continue
		}
		out = append(out, "- "+l)
	}
	for _, l := range strings.Split(strings.TrimRight(want, "\n"), "\n") {
		if g[l] > 0 {
			g[l]--
			continue
		}
		out = append(out, "+ "+l)
	}
	return strings.Join(out, "\n")
}

// section is one `### title` of a page, up to the next ## or ### title.
type section struct {
	title      string
	hasExample bool // holds a ```lua block
}

// sections returns the `### ` sections of a page (titles inside code
// blocks do not count).
func sections(text string) []*section {
	var out []*section
	var cur *section
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			if !inCode && cur != nil && strings.TrimSpace(line) == "```lua" {
				cur.hasExample = true
			}
			inCode = !inCode
			continue
		}
		switch {
		case inCode:
		case strings.HasPrefix(line, "### "):
			cur = &section{title: strings.TrimSpace(strings.TrimPrefix(line, "### "))}
			out = append(out, cur)
		case strings.HasPrefix(line, "## "), strings.HasPrefix(line, "# "):
			cur = nil
		}
	}
	return out
}

func TestDocsCallbackSections(t *testing.T) {
	for _, cat := range luaapi.Catalogue {
		page := categoryPage(cat.Name)
		text := readDoc(t, page)
		titles := map[string]int{}
		for _, sec := range sections(text) {
			titles[sec.title]++
			if !sec.hasExample {
				t.Errorf("%s: section `### %s` has no ```lua example", shown(page), sec.title)
			}
		}
		known := map[string]bool{}
		for _, cb := range cat.Callbacks {
			known[cb.Name] = true
			switch titles[cb.Name] {
			case 0:
				t.Errorf("%s: no `### %s` section for callback %s", shown(page), cb.Name, cb.ID())
			case 1:
			default:
				t.Errorf("%s: `### %s` appears %d times", shown(page), cb.Name, titles[cb.Name])
			}
		}
		for title := range titles {
			if !known[title] {
				t.Errorf("%s: section `### %s` is not a %s callback in the catalogue (stale docs? use ## or #### for other titles)",
					shown(page), title, cat.Name)
			}
		}
		if !strings.Contains(text, cat.RegisterFunc()) {
			t.Errorf("%s: never mentions api.%s", shown(page), cat.RegisterFunc())
		}
	}
	// No page for a category the catalogue does not have.
	pages, _ := filepath.Glob(filepath.Join(docsDir, "callbacks", "*.md"))
	for _, p := range pages {
		name := strings.TrimSuffix(filepath.Base(p), ".md")
		found := false
		for _, cat := range luaapi.Catalogue {
			found = found || cat.Name == name
		}
		if !found {
			t.Errorf("%s: no callback category %q in the catalogue", shown(p), name)
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)\s]*)?\)`)

func TestDocsIndex(t *testing.T) {
	index := filepath.Join(docsDir, "README.md")
	text := readDoc(t, index)
	linked := map[string]bool{}
	for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
		linked[filepath.Clean(m[1])] = true
	}
	for _, cat := range luaapi.Catalogue {
		rel := filepath.Join("callbacks", cat.Name+".md")
		if !linked[rel] {
			t.Errorf("%s: no link to %s", shown(index), rel)
		}
	}
	// Every page in docs/ is reachable from the index.
	err := filepath.WalkDir(docsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".md") {
			return err
		}
		rel, _ := filepath.Rel(docsDir, path)
		if rel != "README.md" && !linked[rel] {
			t.Errorf("%s: no link to %s (add it to the index)", shown(index), rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// luaBlock is one ```lua block of a docs page.
type luaBlock struct {
	page string // docs/callbacks/spam_checker.md
	line int    // line of the first line of code
	code string
}

func docLuaBlocks(t *testing.T) []luaBlock {
	t.Helper()
	var blocks []luaBlock
	err := filepath.WalkDir(docsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".md") {
			return err
		}
		rel, _ := filepath.Rel(docsDir, path)
		if rel == "stdlib.md" { // checked by stdlib's own test
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		page := filepath.ToSlash(filepath.Join("docs", rel))
		var cur *luaBlock
		for i, line := range strings.Split(string(src), "\n") {
			switch {
			case cur != nil && strings.TrimSpace(line) == "```":
				blocks = append(blocks, *cur)
				cur = nil
			case cur != nil:
				cur.code += line + "\n"
			case strings.TrimSpace(line) == "```lua":
				cur = &luaBlock{page: page, line: i + 2}
			}
		}
		if cur != nil {
			t.Errorf("%s:%d: unterminated ```lua block", page, cur.line-1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

// topLevelReturnM matches `return M` at the start of a line: the block is
// a whole module.
var topLevelReturnM = regexp.MustCompile(`(?m)^return M\s*$`)

func TestDocsLuaBlocks(t *testing.T) {
	blocks := docLuaBlocks(t)
	if len(blocks) < len(luaapi.Catalogue) {
		t.Fatalf("found only %d ```lua blocks in docs/", len(blocks))
	}
	modules := 0
	for _, b := range blocks {
		name := fmt.Sprintf("%s:%d", b.page, b.line)
		t.Run(strings.TrimPrefix(name, "docs/"), func(t *testing.T) {
			first, _, _ := strings.Cut(b.code, "\n")
			first = strings.TrimSpace(first)
			if first == notChecked {
				t.Skip("marked " + notChecked)
			}
			// Pad so that Lua's line numbers are the page's.
			code := strings.Repeat("\n", b.line-1) + b.code
			if !topLevelReturnM.MatchString(b.code) {
				if _, err := sandbox.Compile([]byte(code), b.page); err != nil {
					t.Fatalf("%s: does not compile: %v", name, err)
				}
				return
			}
			modules++
			var config string
			if strings.HasPrefix(first, configPrefix) {
				config = strings.TrimSpace(strings.TrimPrefix(first, configPrefix))
				if !json.Valid([]byte(config)) {
					t.Fatalf("%s: the %s line is not JSON: %s", name, configPrefix, config)
				}
			}
			loadDocModule(t, name, code, config)
		})
	}
	if modules == 0 {
		t.Errorf("no whole module (a block ending with `return M`) among the docs' Lua blocks")
	}
}

// loadDocModule loads code as the only module of a config, through the
// engine as `luahost check` does, and fails the test when anything goes
// wrong.
func loadDocModule(t *testing.T, name, code, config string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mod.lua"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := "server_name: example.org\nmodules:\n  - module: mod.lua\n"
	if config != "" {
		yaml += "    config: " + config + "\n"
	}
	cfgFile := filepath.Join(dir, "luahost.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.LoadConfig(cfgFile)
	if err != nil {
		t.Fatalf("%s: config: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The reference in-memory homeserver, as `luahost check` uses: a
	// constructor may call host functions.
	eng, err := engine.New(ctx, cfg, engine.Options{Host: memhost.New(cfg.ServerName),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if eng != nil {
		defer eng.Close()
	}
	if err != nil {
		t.Fatalf("%s: the module does not load: %v", name, err)
	}
	if len(eng.Status()) != 1 {
		t.Fatalf("%s: loaded %d modules, want 1", name, len(eng.Status()))
	}
}
