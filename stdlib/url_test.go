package stdlib

import "testing"

func TestURL(t *testing.T) {
	runLuaCases(t, []luaCase{
		{name: "escape", code: `
			local url = require("url")
			assert(url.escape("a b&c=d/é") == "a+b%26c%3Dd%2F%C3%A9")
			assert(url.unescape("a+b%26c") == "a b&c")
			assert(url.path_escape("a b/c") == "a%20b%2Fc")
			assert(url.path_unescape("a%20b+c") == "a b+c")
			local v, err = url.unescape("%zz")
			assert(v == nil and err:find("invalid URL escape"), err)`},
		{name: "parse", code: `
			local url = require("url")
			local u = assert(url.parse("https://bob:pw@matrix.example.org:8448/_matrix/client/v3/sync?since=s1&filter=2&filter=3#frag"))
			assert(u.scheme == "https" and u.host == "matrix.example.org" and u.port == 8448)
			assert(u.path == "/_matrix/client/v3/sync" and u.raw_query == "since=s1&filter=2&filter=3")
			assert(u.query.since == "s1" and u.query.filter == "2")
			assert(#u.query_all.filter == 2 and u.query_all.filter[2] == "3")
			assert(u.fragment == "frag" and u.user == "bob" and u.password == "pw")
			local v6 = url.parse("http://[::1]:8008/")
			assert(v6.host == "::1" and v6.port == 8008)
			local plain = url.parse("/just/a/path")
			assert(plain.scheme == "" and plain.host == "" and plain.port == nil and plain.user == nil)`},
		{name: "parse error", code: `
			local url = require("url")
			local u, err = url.parse("http://a b.com:x/")
			assert(u == nil and type(err) == "string" and err:find("^url.parse: "), err)`},
		{name: "parse_query", code: `
			local url = require("url")
			local q = url.parse_query("a=1&b=x+y&a=2")
			assert(q.a == "1" and q.b == "x y")
			local bad, err = url.parse_query("a=%zz")
			assert(bad == nil and err:find("invalid URL escape"))`},
		{name: "build_query", code: `
			local url = require("url")
			local q = url.build_query{ z = "last", a = "x y", n = 42, f = 1.5, b = true, list = {"3", 1, false} }
			assert(q == "a=x+y&b=true&f=1.5&list=3&list=1&list=false&n=42&z=last", q)
			assert(url.build_query{} == "")`},
		{name: "build_query bad value", code: `require("url").build_query{ a = function() end }`, wantErr: `value of "a" is a function`},
		{name: "build_query nested", code: `require("url").build_query{ a = { {} } }`, wantErr: `value 1 of "a" is a table`},
		{name: "build_query key", code: `require("url").build_query{ [true] = "x" }`, wantErr: "query names must be strings"},
	})
}
