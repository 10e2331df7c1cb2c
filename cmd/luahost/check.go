package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/internal/lint"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
)

// lintEnv is what a module's script sees: the sandbox's globals (with
// require and print, which the engine adds) and module_api's members as
// luaapi lists them.
func lintEnv() lint.Env {
	L := sandbox.NewState()
	defer L.Close()
	(&sandbox.Loader{}).Install(L)
	L.G.Global.RawSetString("print", L.NewFunction(func(*lua.LState) int { return 0 }))
	return lint.Env{Globals: lint.TableFields(L.G.Global, 2), API: memberFields(luaapi.APIMembers())}
}

func memberFields(ms []*luaapi.Member) lint.Fields {
	f := lint.Fields{}
	for _, m := range ms {
		if m.Kind == luaapi.MemberTable {
			f[m.Name] = memberFields(m.Members)
		} else {
			f[m.Name] = nil
		}
	}
	for _, n := range luaapi.NilableMembers {
		if _, ok := f[n]; !ok {
			f[n] = nil
		}
	}
	return f
}

// lintModules lints the script of every module of cfg and prints each
// warning as "warning: FILE:LINE: message [code]" (as "error: ..." when
// strict). It returns how many it printed.
func lintModules(cfg *engine.Config, stderr io.Writer, strict bool) int {
	env := lintEnv()
	prefix := "warning"
	if strict {
		prefix = "error"
	}
	n := 0
	seen := map[string]bool{}
	for _, mc := range cfg.Modules {
		path := filepath.Join(cfg.Dir, filepath.FromSlash(mc.Module))
		if seen[path] {
			continue
		}
		seen[path] = true
		src, err := os.ReadFile(path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // a missing script is a load error already
				fmt.Fprintf(stderr, "%s: %s: %v\n", prefix, path, err)
				n++
			}
			continue
		}
		ws, err := lint.Check(src, path, env)
		if err != nil {
			if errors.Is(err, lint.ErrTooDeep) {
				fmt.Fprintf(stderr, "warning: %v\n", err)
			}
			continue // a syntax error is the load's to report
		}
		for _, w := range ws {
			fmt.Fprintf(stderr, "%s: %s\n", prefix, w)
			n++
		}
	}
	return n
}
