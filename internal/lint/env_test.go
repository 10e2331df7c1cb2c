package lint_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/internal/lint"
	"github.com/luahost/luahost/internal/sandbox"
)

var (
	realEnvOnce sync.Once
	realEnvVal  lint.Env
	realEnvErr  error
)

// realEnv is what a module really sees: the globals of sandbox.NewState
// plus require (the engine's loader installs it), and the module_api
// table as the engine builds it for a constructor, read by a probe module
// (testdata/probe.lua) through the engine's own HTTP handler, in memory.
func realEnv(t testing.TB) lint.Env {
	t.Helper()
	realEnvOnce.Do(func() { realEnvVal, realEnvErr = buildRealEnv() })
	if realEnvErr != nil {
		t.Fatalf("building the real env: %v", realEnvErr)
	}
	return realEnvVal
}

func buildRealEnv() (lint.Env, error) {
	L := sandbox.NewState()
	defer L.Close()
	(&sandbox.Loader{}).Install(L)
	env := lint.Env{Globals: lint.TableFields(L.G.Global, 2)}

	probe, err := os.ReadFile("testdata/probe.lua")
	if err != nil {
		return env, err
	}
	// instance_name: so that api.worker_name, nil on an unnamed instance,
	// is seen as the member it is.
	cfg, err := engine.ParseConfig([]byte("server_name: example.org\ninstance_name: probe\nstorage:\n  backend: memory\nmodules:\n  - module: probe.lua\n"), "probe.yaml")
	if err != nil {
		return env, err
	}
	e, err := engine.New(context.Background(), cfg, engine.Options{
		FS:     fstest.MapFS{"probe.lua": {Data: probe}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if e != nil {
		defer e.Close()
	}
	if err != nil {
		return env, err
	}
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/_synapse/client/lint_probe", nil))
	var described map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &described); err != nil {
		return env, err
	}
	env.API = toFields(described)
	return env, nil
}

func toFields(v any) lint.Fields {
	switch v := v.(type) {
	case map[string]any:
		f := lint.Fields{}
		for k, x := range v {
			f[k] = toFields(x)
		}
		return f
	case []any: // an empty table encodes as []
		return lint.Fields{}
	}
	return nil
}

// The probe sees the members docs/module_api.md documents, nested ones
// included; if it saw nothing, the example test below would prove nothing.
func TestRealEnvHasTheDocumentedAPI(t *testing.T) {
	env := realEnv(t)
	for _, path := range [][]string{
		{"register_spam_checker_callbacks"}, {"get_profile_for_user"}, {"sleep"}, {"looping_background_call"},
		{"get_user_by_req"}, {"server_name"}, {"Codes", "FORBIDDEN"}, {"store", "incr"},
		{"http_client", "post_json_get_json"}, {"account_data_manager", "put_global"},
	} {
		f := env.API
		for i, k := range path {
			sub, ok := f[k]
			if !ok {
				t.Errorf("api.%v: missing %q", path, k)
				break
			}
			if i < len(path)-1 && sub == nil {
				t.Errorf("api.%v: %q has no described members", path, k)
				break
			}
			f = sub
		}
	}
	for _, g := range []string{"require", "print", "pcall", "string", "os"} {
		if _, ok := env.Globals[g]; !ok {
			t.Errorf("global %s missing", g)
		}
	}
	for _, g := range []string{"io", "debug", "dofile"} {
		if _, ok := env.Globals[g]; ok {
			t.Errorf("global %s is in the sandbox env", g)
		}
	}
	if osFields := env.Globals["os"]; len(osFields) != 4 {
		t.Errorf("os members = %v, want time, clock, date, difftime", osFields)
	}
}

// Everything a stock gopher-lua state offers that the sandbox removes is
// reported as sandbox-global (with what to do instead), not as a typo.
func TestEveryRemovedStockNameIsExplained(t *testing.T) {
	env := realEnv(t)
	L := lua.NewState()
	defer L.Close()
	stock := lint.TableFields(L.G.Global, 2)
	var removed []string
	for root, members := range stock {
		sandboxMembers, ok := env.Globals[root]
		if !ok {
			removed = append(removed, root)
			continue
		}
		for m := range members {
			if _, ok := sandboxMembers[m]; !ok && sandboxMembers != nil {
				removed = append(removed, root+"."+m)
			}
		}
	}
	sort.Strings(removed)
	if len(removed) < 10 {
		t.Fatalf("only %d removed names (%v): is the sandbox env right?", len(removed), removed)
	}
	for _, name := range removed {
		ws, err := lint.Check([]byte("local _ = "+name+"\n"), "x.lua", env)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 || ws[0].Code != lint.CodeSandboxGlobal || !strings.HasPrefix(ws[0].Msg, name+" is not available in the luahost sandbox") {
			t.Errorf("%s: got %v, want one sandbox-global", name, ws)
		}
	}
}
