package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// `luahost new NAME` writes a module that loads, passes `luahost check
// --strict` and has a passing test: a starting point, with the category's
// callbacks registered and answering what lets everything through.

var moduleName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func cmdNew(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("luahost new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	category := fs.String("category", "", "callback category to register (spam_checker, third_party_rules, ...; default spam_checker unless --web)")
	callbacks := fs.String("callbacks", "", "comma-separated callbacks of the category to register (default: its first one, or all where the category needs all)")
	web := fs.Bool("web", false, "also register a web resource at /_synapse/client/NAME")
	dir := fs.String("dir", "", "folder to write into (default: ./NAME)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: luahost new NAME [--category CATEGORY] [--callbacks a,b] [--web] [--dir DIR]")
		fmt.Fprintln(stderr, "Writes NAME.lua, luahost.yaml, NAME_test.lua and .luarc.json (with the LuaLS stubs in .luahost/types).")
		var cats []string
		for _, c := range luaapi.Catalogue {
			cats = append(cats, c.Name)
		}
		fmt.Fprintln(stderr, "categories: "+strings.Join(cats, ", "))
		fs.PrintDefaults()
	}
	// Flags may come after NAME too.
	var name string
	rest := args
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		rest = fs.Args()
		if len(rest) > 0 {
			if name != "" {
				fs.Usage()
				return 2
			}
			name, rest = rest[0], rest[1:]
		}
	}
	if name == "" {
		fs.Usage()
		return 2
	}
	if !moduleName.MatchString(name) {
		fmt.Fprintf(stderr, "error: module name %q: use lower-case letters, digits and _ (it names the file, the module and its web path)\n", name)
		return 2
	}
	if *category == "" && !*web {
		*category = "spam_checker"
	}
	var cat *luaapi.Category
	if *category != "" {
		var names []string
		for _, c := range luaapi.Catalogue {
			names = append(names, c.Name)
			if c.Name == *category {
				cat = c
			}
		}
		if cat == nil {
			hint := ""
			if s := luaapi.Suggest(*category, names); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", s)
			}
			fmt.Fprintf(stderr, "error: unknown category %q%s; categories: %s\n", *category, hint, strings.Join(names, ", "))
			return 2
		}
	}
	chosen, err := chooseCallbacks(cat, *callbacks)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	if *dir == "" {
		*dir = name
	}
	files := scaffold(name, cat, chosen, *web)
	if err := writeScaffold(*dir, files); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "created %s:\n", *dir)
	for _, f := range []struct{ path, what string }{
		{name + ".lua", "the module"},
		{"luahost.yaml", "a config with its entry"},
		{name + "_test.lua", "its tests"},
		{".luarc.json", "editor set-up (LuaLS stubs in .luahost/types)"},
	} {
		fmt.Fprintf(stdout, "  %-22s %s\n", f.path, f.what)
	}
	fmt.Fprintf(stdout, "next:\n  luahost check --strict -c %s\n  luahost test %s\n",
		filepath.Join(*dir, "luahost.yaml"), *dir)
	return 0
}

// chooseCallbacks picks what to register: the named ones, or the
// category's first (every one where the category wants all or none).
func chooseCallbacks(cat *luaapi.Category, list string) ([]*luaapi.Callback, error) {
	if cat == nil {
		if list != "" {
			return nil, errors.New("--callbacks needs --category")
		}
		return nil, nil
	}
	if list == "" {
		if cat.AllOrNone {
			return cat.Callbacks, nil
		}
		return cat.Callbacks[:1], nil
	}
	var names []string
	for _, c := range cat.Callbacks {
		names = append(names, c.Name)
	}
	var out []*luaapi.Callback
	for _, want := range strings.Split(list, ",") {
		want = strings.TrimSpace(want)
		found := false
		for _, c := range cat.Callbacks {
			if c.Name == want {
				out = append(out, c)
				found = true
			}
		}
		if !found {
			hint := ""
			if s := luaapi.Suggest(want, names); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", s)
			}
			return nil, fmt.Errorf("%s has no callback %q%s; its callbacks: %s", cat.Name, want, hint, strings.Join(names, ", "))
		}
	}
	if cat.AllOrNone && len(out) != len(cat.Callbacks) {
		return nil, fmt.Errorf("%s needs every one of its callbacks: %s", cat.Name, strings.Join(names, ", "))
	}
	return out, nil
}

// writeScaffold writes the files under dir, refusing to overwrite any.
func writeScaffold(dir string, files map[string]string) error {
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			return fmt.Errorf("%s exists already: luahost new writes only new files", filepath.Join(dir, p))
		}
	}
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(files[p]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// scaffold returns the files of a new module by path.
func scaffold(name string, cat *luaapi.Category, cbs []*luaapi.Callback, web bool) map[string]string {
	files := map[string]string{
		name + ".lua":      moduleSource(name, cat, cbs, web),
		name + "_test.lua": testSource(name, cbs, web),
		"luahost.yaml": fmt.Sprintf(`# luahost check --strict -c luahost.yaml
# luahost test .
server_name: example.org
modules:
  - module: %s.lua
    config:
      greeting: Hello
`, name),
	}
	luarc, _ := json.MarshalIndent(map[string]any{
		"$schema":                   "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json",
		"runtime.version":           "Lua 5.1",
		"runtime.builtin":           map[string]string{"io": "disable", "debug": "disable", "package": "disable", "utf8": "disable", "bit32": "disable", "ffi": "disable", "jit": "disable"},
		"workspace.library":         []string{".luahost/types"},
		"workspace.checkThirdParty": false,
		"type.checkTableShape":      true,
		"diagnostics.severity":      map[string]string{"inject-field": "Error", "undefined-field": "Error", "param-type-mismatch": "Error"},
	}, "", "  ")
	files[".luarc.json"] = string(luarc) + "\n"
	_ = fs.WalkDir(stdlib.Types(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(stdlib.Types(), p)
		if err == nil {
			files[".luahost/types/"+p] = string(b)
		}
		return err
	})
	return files
}

func moduleSource(name string, cat *luaapi.Category, cbs []*luaapi.Callback, web bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- %s: a luahost module (docs/writing-modules.md).\n", name)
	b.WriteString(`local api = require("module_api")
local log = require("log")

local M = {}

-- Checks the module's config: (from luahost.yaml) and returns what new()
-- receives. An api.ConfigError points at the config: line.
---@param config table<string, any>
---@return table<string, any>
function M.parse_config(config)
  if config.greeting ~= nil and type(config.greeting) ~= "string" then
    error(api.ConfigError("greeting must be a string"))
  end
  config.greeting = config.greeting or "Hello"
  return config
end

-- The constructor: register callbacks and web resources here.
---@param config table<string, any>
---@param api luahost.module_api
function M.new(config, api)
  log.info("starting", { greeting = config.greeting })
`)
	if cat != nil {
		fmt.Fprintf(&b, "\n  -- docs/callbacks/%s.md describes every callback of the category.\n", cat.Name)
		fmt.Fprintf(&b, "  api.%s{\n", cat.RegisterFunc())
		for _, c := range cbs {
			b.WriteString(callbackSource(name, c))
		}
		b.WriteString("  }\n")
	}
	if web {
		fmt.Fprintf(&b, `
  -- docs/web_resources.md: handlers, requests, responses, errors.
  api.register_web_resource("/_synapse/client/%s", {
    GET = function(request)
      local who = request.query.name or "world"
      return { status = 200, json = { message = config.greeting .. ", " .. who .. "!" } }
    end,
  })
`, name)
	}
	b.WriteString("end\n\nreturn M\n")
	return b.String()
}

// callbackSource is one entry of the register table, answering what lets
// the operation go ahead.
func callbackSource(name string, c *luaapi.Callback) string {
	params := make([]string, len(c.Args))
	for i, a := range c.Args {
		params[i] = a.Name
	}
	sig := strings.Join(params, ", ")
	if c.Name == "auth_checkers" {
		return fmt.Sprintf(`    auth_checkers = {
      ["org.example.%s"] = {
        fields = { "token" },
        check = function(%s)
          -- Return the user's ID (and optionally a function called with the
          -- login response) to log them in; nil lets other checkers try.
          return nil
        end,
      },
    },
`, name, sig)
	}
	body := neutralAnswer(c)
	return fmt.Sprintf("    -- Returns %s.\n    %s = function(%s)\n      %s\n    end,\n", oneLineDoc(c.Returns), c.Name, sig, body)
}

func oneLineDoc(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "`", "")), " ")
}

func neutralAnswer(c *luaapi.Callback) string {
	switch c.Combine {
	case luaapi.CombineSpam, luaapi.CombineSpamThenInvite:
		return "return api.NOT_SPAM"
	case luaapi.CombineFirstTrue:
		return "return false"
	case luaapi.CombineFirstFalse:
		return "return true"
	case luaapi.CombineRegistration:
		return "return api.RegistrationBehaviour.ALLOW"
	case luaapi.CombineEventAllowed:
		return "return true -- or false to refuse, or true and a changed event:get_dict()"
	case luaapi.CombineChain:
		return "-- change " + c.Args[1].Name + " here; a raised api.SynapseError refuses"
	case luaapi.CombineNotify:
		return fmt.Sprintf("log.info(%q, { %s = %s })", c.Name, c.Args[0].Name, c.Args[0].Name)
	case luaapi.CombineFirstValue, luaapi.CombineFirstString, luaapi.CombineAuth:
		return "return nil -- no answer: the homeserver's default applies"
	case luaapi.CombineOpinion:
		return "return nil -- no opinion"
	case luaapi.CombineMergeStates, luaapi.CombineMergeFields:
		return "return {}"
	case luaapi.CombineUnionUsers:
		return "return api.array()"
	case luaapi.CombineBatch:
		return "return 100 -- target duration of the next batch, in ms"
	case luaapi.CombineBatchSize:
		return "return 100"
	case luaapi.CombineLegacyRenew:
		return "return false, false, 0 -- token_valid, token_stale, expiration_ts"
	case luaapi.CombineFirstInteger:
		return "return nil -- no answer: the homeserver handles the request"
	}
	return "return nil"
}

// exampleArg is a Lua expression for a test's argument.
func exampleArg(a luaapi.Arg) string {
	switch a.Kind {
	case luaapi.KindEvent:
		return `{ type = "m.room.message", room_id = "!room:example.org", sender = "@alice:example.org", content = { msgtype = "m.text", body = "hello" } }`
	case luaapi.KindState, luaapi.KindTable:
		switch a.Go {
		case "*Requester":
			return `{ user_id = "@alice:example.org" }`
		case "MediaUploadLimit":
			return `{ max_bytes = 1000, time_period_ms = 60000 }`
		}
		return "{}"
	case luaapi.KindArray, luaapi.KindRequest:
		return "{}"
	case luaapi.KindOptStr, luaapi.KindOptTable:
		return "nil"
	case luaapi.KindBool:
		return "false"
	case luaapi.KindNumber:
		return "1"
	case luaapi.KindFile:
		return `"file content"`
	}
	switch {
	case a.Name == "room_id":
		return `"!room:example.org"`
	case strings.HasSuffix(a.Name, "user_id") || a.Name == "user" || a.Name == "inviter" || a.Name == "invitee" || a.Name == "sender":
		return `"@alice:example.org"`
	}
	return `"example"`
}

// expectation is the test's assertion on the neutral answer.
func expectation(c *luaapi.Callback, call string) string {
	switch c.Combine {
	case luaapi.CombineSpam, luaapi.CombineSpamThenInvite:
		return fmt.Sprintf("t.equal(%s, \"NOT_SPAM\")", call)
	case luaapi.CombineFirstTrue:
		return fmt.Sprintf("t.equal(%s, false)", call)
	case luaapi.CombineFirstFalse, luaapi.CombineEventAllowed:
		return fmt.Sprintf("t.equal(%s, true)", call)
	case luaapi.CombineRegistration:
		return fmt.Sprintf("t.equal(%s, \"allow\")", call)
	case luaapi.CombineChain:
		return fmt.Sprintf("t.same(%s, {})", call)
	case luaapi.CombineMergeStates, luaapi.CombineMergeFields, luaapi.CombineUnionUsers:
		return fmt.Sprintf("t.same(%s, {})", call)
	case luaapi.CombineBatch, luaapi.CombineBatchSize:
		return fmt.Sprintf("t.equal(%s, 100)", call)
	case luaapi.CombineLegacyRenew:
		return fmt.Sprintf("t.same({ %s }, { false, false, 0 })", call)
	}
	return fmt.Sprintf("t.equal(%s, nil)", call)
}

func testSource(name string, cbs []*luaapi.Callback, web bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `-- Tests of %s.lua: luahost test . (docs/testing.md)
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }
`, name)
	for _, c := range cbs {
		args := []string{fmt.Sprintf("%q", c.Name)}
		for _, a := range c.Args {
			args = append(args, exampleArg(a))
		}
		call := "t.call(" + strings.Join(args, ", ") + ")"
		fmt.Fprintf(&b, "\nt.test(%q, function()\n  %s\nend)\n", c.Name+" lets everything through", expectation(c, call))
	}
	if web {
		fmt.Fprintf(&b, `
t.test("the web resource greets", function()
  local r = t.request{ path = "/_synapse/client/%s", query = { name = "alice" } }
  t.equal(r.status, 200)
  t.same(r.json, { message = "Hello, alice!" })
end)
`, name)
	}
	fmt.Fprintf(&b, `
t.test("a greeting that is not a string is a config error", function()
  t.load{ file = "%s.lua", config = { greeting = 42 } }
  t.raises(t.start, "greeting must be a string")
end)
`, name)
	return b.String()
}
