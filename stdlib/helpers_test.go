package stdlib

import (
	"log/slog"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// newLibState returns a fresh state with a global require that resolves
// names through Lookup, calling each loader at most once (as the engine
// does), and the Env the loaders receive.
func newLibState(t testing.TB) (*lua.LState, *Env) {
	t.Helper()
	L := lua.NewState()
	t.Cleanup(L.Close)
	env := &Env{Module: "test_module", Logger: slog.New(slog.DiscardHandler)}
	loaded := map[string]lua.LValue{}
	L.SetGlobal("require", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		if v, ok := loaded[name]; ok {
			L.Push(v)
			return 1
		}
		load, ok := Lookup(name)
		if !ok {
			L.RaiseError("module %q not found", name)
		}
		v := load(L, env)
		loaded[name] = v
		L.Push(v)
		return 1
	}))
	return L, env
}

// runChunk runs code as a chunk named name in L and returns its error.
func runChunk(L *lua.LState, name, code string) error {
	fn, err := L.Load(strings.NewReader(code), name)
	if err != nil {
		return err
	}
	L.Push(fn)
	return L.PCall(0, lua.MultRet, nil)
}

// luaCase is one table-driven Lua test: code runs in a fresh state and
// either succeeds (its asserts hold) or fails with an error containing
// wantErr.
type luaCase struct {
	name    string
	code    string
	wantErr string
}

func runLuaCases(t *testing.T, cases []luaCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			L, _ := newLibState(t)
			err := runChunk(L, c.name+".lua", c.code)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("no error, want one containing %q", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("error %q does not contain %q", err, c.wantErr)
			}
		})
	}
}
