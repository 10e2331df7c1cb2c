package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/luahost/luahost/luaapi"
)

// What `luahost new` writes loads, passes `luahost check --strict` and
// its own tests, for every category and for a web resource.
func TestNewModulePassesCheckAndTest(t *testing.T) {
	type tc struct {
		name string
		args []string
	}
	cases := []tc{{"webonly", []string{"--web"}}, {"spamweb", []string{"--category", "spam_checker", "--web"}}}
	for _, cat := range luaapi.Catalogue {
		// Every callback of the category, so every neutral answer is checked.
		var names []string
		for _, c := range cat.Callbacks {
			names = append(names, c.Name)
		}
		cases = append(cases, tc{"m_" + cat.Name, []string{"--category", cat.Name, "--callbacks", strings.Join(names, ",")}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), c.name)
			var out, errOut bytes.Buffer
			if code := run(append([]string{"new", c.name, "--dir", dir}, c.args...), &out, &errOut); code != 0 {
				t.Fatalf("new: exit %d: %s", code, errOut.String())
			}
			out.Reset()
			errOut.Reset()
			if code := run([]string{"check", "--strict", "-c", filepath.Join(dir, "luahost.yaml")}, &out, &errOut); code != 0 {
				t.Fatalf("check --strict: exit %d:\n%s%s", code, out.String(), errOut.String())
			}
			if errOut.Len() > 0 {
				t.Errorf("check printed warnings:\n%s", errOut.String())
			}
			out.Reset()
			if code := run([]string{"test", dir}, &out, &errOut); code != 0 {
				src, _ := os.ReadFile(filepath.Join(dir, c.name+".lua"))
				t.Fatalf("test: exit %d:\n%s\n%s", code, out.String(), src)
			}
			if !strings.Contains(out.String(), ", 0 failed") {
				t.Errorf("test output: %s", out.String())
			}
		})
	}
}

func TestNewWritesEditorSetUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mod")
	var out, errOut bytes.Buffer
	if code := run([]string{"new", "mod", "--dir", dir, "--category", "third_party_rules"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var luarc map[string]any
	b, err := os.ReadFile(filepath.Join(dir, ".luarc.json"))
	if err != nil || json.Unmarshal(b, &luarc) != nil {
		t.Fatalf(".luarc.json: %v %s", err, b)
	}
	lib, _ := luarc["workspace.library"].([]any)
	if len(lib) != 1 || lib[0] != ".luahost/types" || luarc["runtime.version"] != "Lua 5.1" {
		t.Errorf(".luarc.json: %s", b)
	}
	for _, f := range []string{"module_api.lua", "stdlib.lua", "luahost_test.lua"} {
		got, err := os.ReadFile(filepath.Join(dir, ".luahost", "types", f))
		want, _ := os.ReadFile(filepath.Join("..", "..", "stdlib", "types", f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not the stubs of this luahost (%v)", f, err)
		}
	}
	// Nothing is overwritten.
	if code := run([]string{"new", "mod", "--dir", dir}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "exists already") {
		t.Errorf("a second new over the same folder: exit %d, %s", code, errOut.String())
	}
}

func TestNewRefuses(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"new"}, "usage: luahost new"},
		{[]string{"new", "Bad-Name"}, "use lower-case letters, digits and _"},
		{[]string{"new", "m", "--category", "spam_checkr"}, "unknown category \"spam_checkr\" (did you mean spam_checker?)"},
		{[]string{"new", "m", "--category", "spam_checker", "--callbacks", "check_event_for_spamm"}, "(did you mean check_event_for_spam?)"},
		{[]string{"new", "m", "--category", "presence_router", "--callbacks", "get_interested_users"}, "presence_router needs every one of its callbacks"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(append(c.args, "--dir", t.TempDir()+"/x"), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errOut.String(), c.want)
		}
	}
}
