package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"
)

// tree writes files (path -> content) under dir; a content starting with
// "-> " makes a symlink to the rest instead.
func tree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(filepath.FromSlash(target), p); err != nil {
				t.Skipf("symlinks unavailable: %v", err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A module whose constructor requires name and asserts what it got.
func requiring(name, check string) string {
	return `return { new = function(c, api)
	local ok, v = pcall(require, "` + name + `")
	` + check + `
end }`
}

// Links that lead out of a module's folder are refused, for require and
// for module: entries alike (os.DirFS followed them anywhere).
func TestLinksDoNotLeadOutOfTheModulesFolder(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string
		config string // after modules:
		want   string // "" loads
	}{
		{"require of a linked file", map[string]string{
			"cfg/spam/m.lua":    requiring("link", `assert(not ok, "loaded the outside file") error(v, 0)`),
			"cfg/spam/link.lua": "-> ../../outside/secret.lua",
		}, "  - module: spam/m.lua\n", `require "link": spam/link.lua: it resolves to`},
		{"require through a linked folder", map[string]string{
			"cfg/spam/m.lua": requiring("lib.secret", `assert(not ok, "loaded the outside file") error(v, 0)`),
			"cfg/spam/lib":   "-> ../../outside",
		}, "  - module: spam/m.lua\n", `outside the module's folder`},
		{"require of a sibling module's file", map[string]string{
			"cfg/spam/m.lua":   requiring("sib", `assert(not ok, "loaded another module's file") error(v, 0)`),
			"cfg/spam/sib.lua": "-> ../other/x.lua",
			"cfg/other/x.lua":  "return {}",
		}, "  - module: spam/m.lua\n", `outside the module's folder`},
		{"a link inside the folder is fine", map[string]string{
			"cfg/spam/m.lua":        requiring("alias", `assert(ok and v.real, tostring(v))`),
			"cfg/spam/alias.lua":    "-> sub/real.lua",
			"cfg/spam/sub/real.lua": "return { real = true }",
		}, "  - module: spam/m.lua\n", ""},
		{"module: a linked file", map[string]string{
			"cfg/linked.lua": "-> ../outside/mod.lua",
		}, "  - module: linked.lua\n", `test.yaml:3: module "linked": module: linked.lua: it resolves to`},
		{"module: in a linked folder", map[string]string{
			"cfg/shared": "-> ../outside",
		}, "  - module: shared/mod.lua\n", `list that folder in module_dirs: to allow it`},
		{"module_dirs allows a linked file", map[string]string{
			"cfg/linked.lua": "-> ../outside/mod.lua",
		}, "  - module: linked.lua\nmodule_dirs: [../outside]\n", ""},
		{"module_dirs allows a linked folder, and require stays inside it", map[string]string{
			"cfg/shared":       "-> ../outside",
			"outside/uses.lua": requiring("secret", `assert(ok and v.secret, tostring(v))`),
		}, "  - module: shared/uses.lua\nmodule_dirs: [../outside]\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"outside/secret.lua": "return { secret = true }",
				"outside/mod.lua":    "return { new = function() end }",
			}
			for k, v := range tc.files {
				files[k] = v
			}
			tree(t, dir, files)
			cfgFile := filepath.Join(dir, "cfg", "test.yaml")
			if err := os.WriteFile(cfgFile, []byte("server_name: example.org\nmodules:\n"+tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(cfgFile)
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(context.Background(), cfg, Options{Logger: quiet, Store: nil})
			if e != nil {
				defer e.Close()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want it to load, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}

// Checking and parsing a large module file stop at init_timeout: 8 MB of
// statements take gopher-lua's parser ~10 s.
func TestCompilingStopsAtInitTimeout(t *testing.T) {
	big := strings.Repeat("x = y + 1\n", 800000) + "return { new = function() end }\n"
	start := time.Now()
	_, err := loadEngine(t, "server_name: example.org\nmodules:\n  - module: big.lua\n    init_timeout: 200ms\n",
		map[string]string{"big.lua": big})
	if err == nil || !strings.Contains(err.Error(), "compiling did not finish within init_timeout (200ms)") {
		t.Fatalf("got %v", err)
	}
	t.Logf("refused %s after the load began (init_timeout 200ms)", time.Since(start).Round(time.Millisecond))
}
