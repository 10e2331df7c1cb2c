package stdlib

import "testing"

func TestStrings(t *testing.T) {
	runLuaCases(t, []luaCase{
		{name: "split", code: `
			local strings = require("strings")
			local p = strings.split("a,b,,c", ",")
			assert(#p == 4 and p[3] == "" and p[4] == "c")
			p = strings.split("a,b,c", ",", 2)
			assert(#p == 2 and p[2] == "b,c")
			p = strings.split("héllo", "")
			assert(#p == 5 and p[2] == "é")
			assert(#strings.fields("  a \t b\n") == 2)`},
		{name: "trim", code: `
			local strings = require("strings")
			assert(strings.trim("  hi \n") == "hi")
			assert(strings.trim("xxhixx", "x") == "hi")
			assert(strings.trim_prefix("@alice:ex.org", "@") == "alice:ex.org")
			assert(strings.trim_suffix("file.lua", ".lua") == "file")
			assert(strings.trim_prefix("abc", "x") == "abc")`},
		{name: "predicates", code: `
			local strings = require("strings")
			assert(strings.has_prefix("!room:ex.org", "!") and not strings.has_prefix("x", "!"))
			assert(strings.has_suffix("@a:ex.org", ":ex.org"))
			assert(strings.contains("hello", "ell") and not strings.contains("hello", "z"))
			assert(strings.casefold_equal("STRASSE", "strasse") and strings.casefold_equal("Σ", "σ"))
			assert(strings.index("hello", "l") == 3 and strings.index("hello", "z") == nil)
			assert(strings.count("cheese", "e") == 3)`},
		{name: "case", code: `
			local strings = require("strings")
			assert(strings.lower("ÀBC") == "àbc")
			assert(strings.upper("straße") == "STRAßE") -- simple case mapping, as Go's strings.ToUpper
			assert(strings.upper("émile") == "ÉMILE")`},
		{name: "replace", code: `
			local strings = require("strings")
			assert(strings.replace("a.b.c", ".", "/") == "a/b/c")
			assert(strings.replace("a.b.c", ".", "/", 1) == "a/b.c")
			assert(strings.replace("abc", "", "-") == "-a-b-c-")`},
		{name: "replace cap", code: `
			local strings = require("strings")
			strings.replace(string.rep("a", 10000), "", string.rep("b", 10000))`, wantErr: "strings.replace: result larger than"},
		{name: "join", code: `
			local strings = require("strings")
			assert(strings.join({"a", "b", 3}, ", ") == "a, b, 3")
			assert(strings.join({}, ",") == "")`},
		{name: "join bad element", code: `require("strings").join({"a", {}}, ",")`, wantErr: "element 2 is a table"},
		{name: "join cap", code: `
			local big = string.rep("x", 1024 * 1024)
			local t = {}
			for i = 1, 100 do t[i] = big end
			require("strings").join(t, "")`, wantErr: "strings.join: result larger than"},
		{name: "utf8", code: `
			local strings = require("strings")
			assert(strings.rune_len("héllo") == 5 and #"héllo" == 6)
			assert(strings.valid_utf8("héllo") and not strings.valid_utf8("\255"))`},
		{name: "arg check", code: `require("strings").split("a")`, wantErr: "bad argument #2"},
	})
}
