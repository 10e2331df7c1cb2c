package luatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/internal/invoke"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// api builds the table require("luahost.test") returns in a test file.
// The reference is docs/testing.md.
func (fr *fileRun) api() *lua.LTable {
	L := fr.L
	t := L.NewTable()
	set := func(tbl *lua.LTable, name string, fn lua.LGFunction) { tbl.RawSetString(name, L.NewFunction(fn)) }

	set(t, "test", fr.apiTest)
	set(t, "describe", fr.apiDescribe)
	set(t, "skip", func(L *lua.LState) int {
		fr.env("skip")
		ud := L.NewUserData()
		ud.Value = &skipped{reason: L.OptString(1, "skipped")}
		L.Error(ud, 0)
		return 0
	})
	set(t, "load", fr.apiLoad)
	set(t, "start", func(L *lua.LState) int {
		te := fr.env("start")
		if _, err := te.engine(); err != nil {
			fr.raise("t.start: the modules did not load: %v", err)
		}
		return 0
	})
	set(t, "seed", fr.apiSeed)
	set(t, "call", fr.apiCall)
	set(t, "request", fr.apiRequest)
	set(t, "events", func(L *lua.LState) int {
		te := fr.env("events")
		host := fr.host(te, "events")
		evs := host.Events(L.CheckString(1))
		if evs == nil {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(toLua(L, evs))
		return 1
	})
	set(t, "account_data", func(L *lua.LState) int {
		te := fr.env("account_data")
		host := fr.host(te, "account_data")
		content, err := host.GlobalAccountData(context.Background(), L.CheckString(1), L.CheckString(2))
		if err != nil {
			fr.raise("t.account_data: %v", err)
		}
		L.Push(toLua(L, content))
		return 1
	})
	set(t, "logs", func(L *lua.LState) int {
		te := fr.env("logs")
		out := stdlib.NewArray(L, 0)
		for i, r := range te.logs.all() {
			rec := L.NewTable()
			for k, v := range r.Attrs {
				rec.RawSetString(k, lua.LString(v))
			}
			rec.RawSetString("level", lua.LString(r.Level))
			rec.RawSetString("msg", lua.LString(r.Msg))
			out.RawSetInt(i+1, rec)
		}
		L.Push(out)
		return 1
	})

	clk := L.NewTable()
	set(clk, "now", func(L *lua.LState) int {
		L.Push(lua.LNumber(float64(fr.env("clock.now").clock.Now().UnixNano()) / 1e9))
		return 1
	})
	set(clk, "now_ms", func(L *lua.LState) int {
		L.Push(lua.LNumber(fr.env("clock.now_ms").clock.Now().UnixMilli()))
		return 1
	})
	set(clk, "advance", func(L *lua.LState) int {
		te := fr.env("clock.advance")
		secs := float64(L.CheckNumber(1))
		if !(secs >= 0) || secs > 1e9 {
			fr.raise("t.clock.advance: seconds must be a number from 0 to 1e9, got %v", secs)
		}
		if err := te.clock.Advance(time.Duration(secs * float64(time.Second))); err != nil {
			fr.raise("t.clock.advance: %v", err)
		}
		return 0
	})
	t.RawSetString("clock", clk)

	hc := L.NewTable()
	set(hc, "stub", fr.apiStub)
	set(hc, "requests", func(L *lua.LState) int {
		te := fr.env("http.requests")
		out := stdlib.NewArray(L, 0)
		for i, r := range te.http.recorded() {
			rec := L.NewTable()
			rec.RawSetString("method", lua.LString(r.Method))
			rec.RawSetString("url", lua.LString(r.URL))
			rec.RawSetString("path", lua.LString(r.Path))
			rec.RawSetString("query", toLua(L, r.Query))
			rec.RawSetString("headers", toLua(L, r.Headers))
			rec.RawSetString("body", lua.LString(r.Body))
			if len(r.Body) > 0 && json.Valid(r.Body) {
				if v, err := stdlib.DecodeJSON(L, r.Body); err == nil {
					rec.RawSetString("json", v)
				}
			}
			out.RawSetInt(i+1, rec)
		}
		L.Push(out)
		return 1
	})
	t.RawSetString("http", hc)

	fr.installAsserts(t)
	return t
}

// host is the running test's homeserver, or raises.
func (fr *fileRun) host(te *testEnv, fn string) *memhost.Host {
	h, err := te.world()
	if err != nil {
		fr.raise("t.%s: %v", fn, err)
	}
	return h
}

func (fr *fileRun) apiTest(L *lua.LState) int {
	name := L.CheckString(1)
	fn := L.CheckFunction(2)
	if !fr.collecting {
		fr.raise("t.test: declare tests at the file's top level (or in t.describe), not inside another test")
	}
	full := strings.Join(append(append([]string(nil), fr.groups...), name), " / ")
	for _, tc := range fr.tests {
		if tc.name == full {
			fr.raise("t.test: a test named %q exists already", full)
		}
	}
	fr.tests = append(fr.tests, &testCase{name: full, fn: fn, load: fr.load})
	return 0
}

func (fr *fileRun) apiDescribe(L *lua.LState) int {
	name := L.CheckString(1)
	fn := L.CheckFunction(2)
	if !fr.collecting {
		fr.raise("t.describe: only at the file's top level")
	}
	fr.groups = append(fr.groups, name)
	defer func() { fr.groups = fr.groups[:len(fr.groups)-1] }()
	L.Push(fn)
	L.Call(0, 0)
	return 0
}

var loadKeys = []string{"config", "module", "file", "name", "server_name", "timeout", "init_timeout", "on_error"}

func (fr *fileRun) apiLoad(L *lua.LState) int {
	spec := L.OptTable(1, L.NewTable())
	ls := &loadSpec{}
	var bad []string
	spec.ForEach(func(k, v lua.LValue) {
		key := lua.LVAsString(k)
		str := func() string {
			s, ok := v.(lua.LString)
			if !ok {
				fr.raise("t.load: %s must be a string, got %s", key, v.Type())
			}
			return string(s)
		}
		switch key {
		case "config":
			switch v := v.(type) {
			case lua.LString:
				ls.config = string(v)
			case *lua.LTable:
				x, err := stdlib.FromLua(L, v)
				if err != nil {
					fr.raise("t.load: config: %v", err)
				}
				m, ok := x.(map[string]any)
				if !ok {
					if arr, isArr := x.([]any); isArr && len(arr) == 0 {
						m = map[string]any{}
					} else {
						fr.raise("t.load: config must be a table of settings, got an array")
					}
				}
				ls.inline = m
			default:
				fr.raise("t.load: config must be a config file name or, with file, a table, got %s", v.Type())
			}
		case "module":
			switch v := v.(type) {
			case lua.LString:
				ls.modules = []string{string(v)}
			case *lua.LTable:
				for i := 1; i <= v.Len(); i++ {
					ls.modules = append(ls.modules, lua.LVAsString(v.RawGetInt(i)))
				}
			default:
				fr.raise("t.load: module must be a module name or a list of names, got %s", v.Type())
			}
		case "file":
			ls.file = str()
		case "name":
			ls.name = str()
		case "server_name":
			ls.serverName = str()
		case "timeout":
			ls.timeout = durationArg(fr, key, v)
		case "init_timeout":
			ls.initTimeout = durationArg(fr, key, v)
		case "on_error":
			ls.onError = str()
		default:
			hint := ""
			if s := luaapi.Suggest(key, loadKeys); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", s)
			}
			bad = append(bad, fmt.Sprintf("unknown key %q%s", key, hint))
		}
	})
	if len(bad) > 0 {
		sort.Strings(bad)
		fr.raise("t.load: %s (keys: %s)", strings.Join(bad, "; "), strings.Join(loadKeys, ", "))
	}
	switch {
	case ls.file != "" && ls.config != "":
		fr.raise("t.load: with file, config is the module's settings table, not a config file")
	case ls.file == "" && ls.inline != nil:
		fr.raise("t.load: a config table needs file = \"module.lua\" (or give config = \"luahost.yaml\")")
	case ls.file != "" && len(ls.modules) > 0:
		fr.raise("t.load: module picks modules of a config file; with file, use name")
	case ls.file == "" && ls.config == "":
		ls.config = "luahost.yaml"
	}
	if fr.collecting && fr.cur == nil {
		fr.load = ls
		return 0
	}
	te := fr.env("load")
	if te.host != nil {
		fr.raise("t.load: call it before t.seed, t.call, t.request or t.start in this test")
	}
	te.load = ls
	return 0
}

func durationArg(fr *fileRun, key string, v lua.LValue) string {
	switch v := v.(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return fmt.Sprintf("%gs", float64(v))
	}
	fr.raise("t.load: %s must be a duration like \"500ms\" or a number of seconds, got %s", key, v.Type())
	return ""
}

func (fr *fileRun) apiSeed(L *lua.LState) int {
	te := fr.env("seed")
	host := fr.host(te, "seed")
	x, err := stdlib.FromLua(L, L.CheckTable(1))
	if err != nil {
		fr.raise("t.seed: %v", err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		fr.raise("t.seed: %v", err)
	}
	if string(b) == "[]" {
		b = []byte("{}")
	}
	f, err := memhost.ParseFixture(b)
	if err != nil {
		fr.raise("t.seed: %v", err)
	}
	if err := host.Seed(f); err != nil {
		fr.raise("t.seed: %v", err)
	}
	return 0
}

func (fr *fileRun) apiCall(L *lua.LState) int {
	te := fr.env("call")
	name := L.CheckString(1)
	cb, _ := luaapi.LookupCallback(name) // an unknown name is invoke.Run's to report
	raw := make([]json.RawMessage, 0, L.GetTop()-1)
	for i := 2; i <= L.GetTop(); i++ {
		x, err := stdlib.FromLua(L, L.Get(i))
		if err != nil {
			fr.raise("t.call: argument %d: %v", i-1, err)
		}
		// An empty Lua table is both {} and []: give the argument the
		// shape the callback takes.
		if cb != nil && i-2 < len(cb.Args) {
			switch cb.Args[i-2].Kind {
			case luaapi.KindArray:
				if m, ok := x.(map[string]any); ok && len(m) == 0 {
					x = []any{}
				}
			case luaapi.KindTable, luaapi.KindOptTable, luaapi.KindState, luaapi.KindEvent:
				if a, ok := x.([]any); ok && len(a) == 0 {
					x = map[string]any{}
				}
			}
		}
		b, err := json.Marshal(x)
		if err != nil {
			fr.raise("t.call: argument %d: %v", i-1, err)
		}
		raw = append(raw, b)
	}
	eng, err := te.engine()
	if err != nil {
		fr.raise("t.call: the modules did not load: %v", err)
	}
	res, err := invoke.Run(context.Background(), eng, name, raw)
	if err != nil {
		fr.raise("t.call(%q): %v", name, err)
	}
	vals := invoke.Values(res)
	for _, v := range vals {
		L.Push(toLua(L, v))
	}
	return len(vals)
}

var requestKeys = []string{"method", "path", "query", "headers", "json", "body", "token", "user"}

func (fr *fileRun) apiRequest(L *lua.LState) int {
	te := fr.env("request")
	spec := L.CheckTable(1)
	var method, path, body, token, user string
	var hasJSON bool
	query := url.Values{}
	header := http.Header{}
	var bad []string
	spec.ForEach(func(k, v lua.LValue) {
		key := lua.LVAsString(k)
		switch key {
		case "method":
			method = strings.ToUpper(lua.LVAsString(v))
		case "path":
			path = lua.LVAsString(v)
		case "token":
			token = lua.LVAsString(v)
		case "user":
			user = lua.LVAsString(v)
		case "body":
			body = lua.LVAsString(v)
		case "json":
			b, err := stdlib.EncodeJSON(L, v, false)
			if err != nil {
				fr.raise("t.request: json: %v", err)
			}
			body, hasJSON = string(b), true
		case "query", "headers":
			tbl, ok := v.(*lua.LTable)
			if !ok {
				fr.raise("t.request: %s must be a table, got %s", key, v.Type())
			}
			tbl.ForEach(func(name, val lua.LValue) {
				vals := []string{lua.LVAsString(val)}
				if arr, ok := val.(*lua.LTable); ok {
					vals = nil
					for i := 1; i <= arr.Len(); i++ {
						vals = append(vals, lua.LVAsString(arr.RawGetInt(i)))
					}
				}
				for _, s := range vals {
					if key == "query" {
						query.Add(lua.LVAsString(name), s)
					} else {
						header.Add(lua.LVAsString(name), s)
					}
				}
			})
		default:
			hint := ""
			if s := luaapi.Suggest(key, requestKeys); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", s)
			}
			bad = append(bad, fmt.Sprintf("unknown key %q%s", key, hint))
		}
	})
	if len(bad) > 0 {
		sort.Strings(bad)
		fr.raise("t.request: %s (keys: %s)", strings.Join(bad, "; "), strings.Join(requestKeys, ", "))
	}
	if !strings.HasPrefix(path, "/") {
		fr.raise("t.request: path must start with /, got %q", path)
	}
	if method == "" {
		method = http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
	}
	if user != "" {
		host := fr.host(te, "request")
		tok, err := host.CreateUser(user, false)
		if err != nil {
			fr.raise("t.request: user: %v", err)
		}
		token = tok
	}
	eng, err := te.engine()
	if err != nil {
		fr.raise("t.request: the modules did not load: %v", err)
	}
	target := path
	if len(query) > 0 {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		target += sep + query.Encode()
	}
	req := httptest.NewRequest(method, target, bytes.NewReader([]byte(body)))
	req.RemoteAddr = "127.0.0.1:40000"
	for k, vs := range header {
		req.Header[k] = vs
	}
	if hasJSON && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	eng.Handler().ServeHTTP(rec, req)
	resp := L.NewTable()
	resp.RawSetString("status", lua.LNumber(rec.Code))
	hdr := L.NewTable()
	for k, vs := range rec.Header() {
		hdr.RawSetString(strings.ToLower(k), lua.LString(vs[0]))
	}
	resp.RawSetString("headers", hdr)
	b := rec.Body.Bytes()
	resp.RawSetString("body", lua.LString(b))
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if v, err := stdlib.DecodeJSON(L, b); err == nil {
			resp.RawSetString("json", v)
		}
	}
	L.Push(resp)
	return 1
}

var stubKeys = []string{"method", "url", "status", "json", "body", "headers", "error"}

func (fr *fileRun) apiStub(L *lua.LState) int {
	te := fr.env("http.stub")
	spec := L.CheckTable(1)
	s := &httpStub{status: http.StatusOK, header: http.Header{}}
	var bad []string
	hasJSON := false
	spec.ForEach(func(k, v lua.LValue) {
		key := lua.LVAsString(k)
		switch key {
		case "method":
			s.method = strings.ToUpper(lua.LVAsString(v))
		case "url":
			s.url = lua.LVAsString(v)
		case "status":
			n, ok := v.(lua.LNumber)
			if !ok || n < 100 || n > 599 || float64(n) != math.Trunc(float64(n)) {
				fr.raise("t.http.stub: status must be an HTTP status code, got %s", render(L, v))
			}
			s.status = int(n)
		case "json":
			b, err := stdlib.EncodeJSON(L, v, false)
			if err != nil {
				fr.raise("t.http.stub: json: %v", err)
			}
			s.body, hasJSON = b, true
		case "body":
			s.body = []byte(lua.LVAsString(v))
		case "error":
			s.err = lua.LVAsString(v)
		case "headers":
			tbl, ok := v.(*lua.LTable)
			if !ok {
				fr.raise("t.http.stub: headers must be a table, got %s", v.Type())
			}
			tbl.ForEach(func(name, val lua.LValue) { s.header.Add(lua.LVAsString(name), lua.LVAsString(val)) })
		default:
			hint := ""
			if sug := luaapi.Suggest(key, stubKeys); sug != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", sug)
			}
			bad = append(bad, fmt.Sprintf("unknown key %q%s", key, hint))
		}
	})
	if len(bad) > 0 {
		sort.Strings(bad)
		fr.raise("t.http.stub: %s (keys: %s)", strings.Join(bad, "; "), strings.Join(stubKeys, ", "))
	}
	u, err := url.Parse(s.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fr.raise("t.http.stub: url must be an absolute http(s) URL, got %q", s.url)
	}
	if hasJSON && s.header.Get("Content-Type") == "" {
		s.header.Set("Content-Type", "application/json")
	}
	te.http.add(s)
	return 0
}

// toLua converts a Go value (JSON-shaped, or anything encoding/json
// takes) to Lua; nil is nil.
func toLua(L *lua.LState, v any) lua.LValue {
	if v == nil {
		return lua.LNil
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return lua.LNil
	}
	lv, err := stdlib.DecodeJSON(L, b)
	if err != nil {
		return lua.LNil
	}
	return lv
}
