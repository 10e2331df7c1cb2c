package stdlib

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

func init() { register("url", loadURL) }

func loadURL(L *lua.LState, _ *Env) lua.LValue {
	t := L.CreateTable(0, 8)
	L.SetFuncs(t, map[string]lua.LGFunction{
		"escape":        urlEscape(url.QueryEscape),
		"path_escape":   urlEscape(url.PathEscape),
		"unescape":      urlUnescape("url.unescape", url.QueryUnescape),
		"path_unescape": urlUnescape("url.path_unescape", url.PathUnescape),
		"parse":         urlParse,
		"parse_query": func(L *lua.LState) int {
			q, err := url.ParseQuery(L.CheckString(1))
			if err != nil {
				L.Push(lua.LNil)
				L.Push(lua.LString("url.parse_query: " + err.Error()))
				return 2
			}
			L.Push(urlQueryFirst(L, q))
			return 1
		},
		"build_query": urlBuildQuery,
	})
	return t
}

func urlEscape(f func(string) string) lua.LGFunction {
	return func(L *lua.LState) int {
		L.Push(lua.LString(f(L.CheckString(1))))
		return 1
	}
}

func urlUnescape(name string, f func(string) (string, error)) lua.LGFunction {
	return func(L *lua.LState) int {
		s, err := f(L.CheckString(1))
		if err != nil {
			L.Push(lua.LNil)
			L.Push(lua.LString(name + ": " + err.Error()))
			return 2
		}
		L.Push(lua.LString(s))
		return 1
	}
}

// urlParse returns the parts of a URL as a table, or nil and an error.
func urlParse(L *lua.LState) int {
	u, err := url.Parse(L.CheckString(1))
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString("url.parse: " + strings.TrimPrefix(err.Error(), "parse ")))
		return 2
	}
	t := L.CreateTable(0, 10)
	t.RawSetString("scheme", lua.LString(u.Scheme))
	t.RawSetString("host", lua.LString(u.Hostname()))
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			t.RawSetString("port", lua.LNumber(n))
		}
	}
	t.RawSetString("path", lua.LString(u.Path))
	t.RawSetString("raw_query", lua.LString(u.RawQuery))
	t.RawSetString("fragment", lua.LString(u.Fragment))
	q, _ := url.ParseQuery(u.RawQuery) // keeps the well-formed pairs
	t.RawSetString("query", urlQueryFirst(L, q))
	all := L.CreateTable(0, len(q))
	for k, vs := range q {
		arr := L.CreateTable(len(vs), 0)
		for _, v := range vs {
			arr.Append(lua.LString(v))
		}
		all.RawSetString(k, arr)
	}
	t.RawSetString("query_all", all)
	if u.User != nil {
		t.RawSetString("user", lua.LString(u.User.Username()))
		if pw, ok := u.User.Password(); ok {
			t.RawSetString("password", lua.LString(pw))
		}
	}
	if u.Opaque != "" {
		t.RawSetString("opaque", lua.LString(u.Opaque))
	}
	L.Push(t)
	return 1
}

func urlQueryFirst(L *lua.LState, q url.Values) *lua.LTable {
	t := L.CreateTable(0, len(q))
	for k, vs := range q {
		if len(vs) > 0 {
			t.RawSetString(k, lua.LString(vs[0]))
		}
	}
	return t
}

// urlBuildQuery encodes {name = value | {values...}} as a query string with
// the names sorted, so the output is stable (signatures, caches, tests).
func urlBuildQuery(L *lua.LState) int {
	t := L.CheckTable(1)
	type pair struct{ k, v string }
	var pairs []pair
	scalar := func(v lua.LValue) (string, bool) {
		switch v := v.(type) {
		case lua.LString:
			return string(v), true
		case lua.LNumber:
			return v.String(), true
		case lua.LBool:
			if v {
				return "true", true
			}
			return "false", true
		}
		return "", false
	}
	t.ForEach(func(key, val lua.LValue) {
		ks, ok := key.(lua.LString)
		if !ok {
			L.ArgError(1, "query names must be strings, got a "+key.Type().String())
		}
		k := string(ks)
		if s, ok := scalar(val); ok {
			pairs = append(pairs, pair{k, s})
			return
		}
		arr, ok := val.(*lua.LTable)
		if !ok {
			L.ArgError(1, "value of "+strconv.Quote(k)+" is a "+val.Type().String()+", expected string, number, boolean or array")
		}
		n := arr.Len()
		for i := 1; i <= n; i++ {
			s, ok := scalar(arr.RawGetInt(i))
			if !ok {
				L.ArgError(1, "value "+strconv.Itoa(i)+" of "+strconv.Quote(k)+" is a "+arr.RawGetInt(i).Type().String()+", expected string, number or boolean")
			}
			pairs = append(pairs, pair{k, s})
		}
	})
	// Stable sort by name keeps the order of an array's values.
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].k < pairs[j].k })
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.v))
	}
	L.Push(lua.LString(b.String()))
	return 1
}
