package gen

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
)

// A catalogue change must come with regenerated invokers and CLI table:
// run `go generate ./...` and commit the result.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatalf("%s: %v (run go generate ./...)", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./... and commit the result", path)
		}
	}
}

// The LuaLS stubs are valid Lua, give every callback a typed field in its
// category's exact class, every api member a definition, and require
// resolves module_api and the test API to them.
func TestLuaLSStubs(t *testing.T) {
	stubs := luaLSStubs()
	if _, err := sandbox.Compile([]byte(stubs), "module_api.lua"); err != nil {
		t.Fatalf("module_api.lua does not parse: %v", err)
	}
	for _, cat := range luaapi.Catalogue {
		class := "---@class (exact) " + luaapi.CallbacksClass(cat) + "\n"
		i := strings.Index(stubs, class)
		if i < 0 {
			t.Errorf("no class %s", luaapi.CallbacksClass(cat))
			continue
		}
		for _, cb := range cat.Callbacks {
			field := "---@field " + cb.Name + "? "
			if !strings.Contains(stubs[i:], field) {
				t.Errorf("%s: no field for %s", luaapi.CallbacksClass(cat), cb.Name)
			}
		}
		if !strings.Contains(stubs, "---@param callbacks "+luaapi.CallbacksClass(cat)+"\nfunction module_api."+cat.RegisterFunc()+"(callbacks) end") {
			t.Errorf("%s does not take its callbacks class", cat.RegisterFunc())
		}
	}
	for _, m := range luaapi.APIMembers() {
		if !strings.Contains(stubs, "module_api."+m.Name+" = ") && !strings.Contains(stubs, "function module_api."+m.Name+"(") {
			t.Errorf("api.%s is not defined", m.Name)
		}
	}
	if !strings.Contains(returnType(luaapi.MustCallback("spam_checker.check_event_for_spam")), "table<string, any>?") {
		t.Error("a spam check's extra fields are not typed")
	}
	for _, f := range []string{"stdlib.lua", "luahost_test.lua"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "stdlib", "types", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sandbox.Compile(src, f); err != nil {
			t.Errorf("%s does not parse: %v", f, err)
		}
		if f == "stdlib.lua" {
			for _, o := range []string{`---@overload fun(name: "module_api"): luahost.module_api`, `---@overload fun(name: "luahost.test"): luahost.test`} {
				if !strings.Contains(string(src), o) {
					t.Errorf("stdlib.lua's require has no %s", o)
				}
			}
		}
	}
}
