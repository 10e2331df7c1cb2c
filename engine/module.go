package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// generation is one loaded instance of a module: its own state, runtime
// and registrations. A reload builds a new generation beside the old one.
type generation struct {
	cfg      ModuleConfig
	rt       *runtime.Runtime
	api      *luaapi.ModuleAPI // baton holder only after load
	seq      int
	loadedAt time.Time
	// sources are the script and the local files require looked for while
	// loading, with the content read (nil: missing); reload compares them.
	// Written on the loop while recording, read-only after load.
	sources   map[string][]byte
	recording bool
	// Read-only copies made at load, safe from any goroutine:
	regs  []luaapi.Registration
	paths []string
	web   []webResource
	// fingerprint hashes the config entry and files this was built from.
	fingerprint string
}

// loadModule compiles and runs a module: the script, parse_config and the
// constructor. On error nothing is left running.
func (e *Engine) loadModule(ctx context.Context, mc ModuleConfig, seq int) (*generation, error) {
	log := e.log.With("module", mc.Name)
	src, err := fs.ReadFile(e.fsys, mc.Module)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &LoadError{Module: mc.Name, File: e.cfgFile, Line: mc.Line,
				Err: fmt.Errorf("script %s not found (module: is relative to the config file's folder)", mc.Module)}
		}
		return nil, &LoadError{Module: mc.Name, File: e.cfgFile, Line: mc.Line, Err: err}
	}
	proto, err := sandbox.Compile(src, mc.Module)
	if err != nil {
		return nil, &LoadError{Module: mc.Name, Err: err, sources: map[string][]byte{mc.Module: src}}
	}

	L := sandbox.NewState()
	api := luaapi.NewModuleAPI(L, mc.Name, e.host.ServerName(), log)
	g := &generation{cfg: mc, api: api, seq: seq, sources: map[string][]byte{mc.Module: src}, recording: true}
	e.installHostFunctions(L, api, mc)
	e.installTimers(L, api.Table, g)
	libs, err := e.libraries(L)
	if err != nil {
		L.Close()
		return nil, &LoadError{Module: mc.Name, Err: err}
	}
	ld := &sandbox.Loader{FS: e.fsys, Dir: path.Dir(mc.Module), API: api.Table, Libraries: libs,
		Env: &stdlib.Env{Module: mc.Name, Logger: e.log}, // the log library adds module=
		OnFile: func(p string, src []byte) {
			// Loop goroutine. Files required later, by a callback, are not
			// part of what this generation was built from.
			if g.recording {
				g.sources[p] = src
			}
		}}
	ld.Install(L)
	L.G.Global.RawSetString("print", L.NewFunction(func(L *lua.LState) int {
		parts := make([]string, 0, L.GetTop())
		for i := 1; i <= L.GetTop(); i++ {
			parts = append(parts, L.ToStringMeta(L.Get(i)).String())
		}
		log.Info(strings.Join(parts, "\t"), "script", strings.TrimSuffix(sandbox.ScriptWhere(L), ":"))
		return 0
	}))
	chunk := L.NewFunctionFromProto(proto)
	g.rt = runtime.New(L, runtime.Options{Module: mc.Name, File: mc.Module, Log: log})

	run := func(what string, resolve func(*lua.LState) *lua.LFunction, args func(*lua.LState) []lua.LValue, ret func(*lua.LState, []lua.LValue) error) error {
		return g.rt.Invoke(ctx, runtime.Call{What: what, Resolve: resolve, Args: args, Ret: ret, Timeout: mc.InitTimeout})
	}

	var modTable *lua.LTable
	var parsed lua.LValue
	steps := []struct {
		what string
		fn   func(*lua.LState) *lua.LFunction
		args func(*lua.LState) []lua.LValue
		ret  func(*lua.LState, []lua.LValue) error
	}{
		{"loading the script", func(*lua.LState) *lua.LFunction { return chunk }, noArgs, func(L *lua.LState, rets []lua.LValue) error {
			t, ok := first(rets).(*lua.LTable)
			if !ok {
				return fmt.Errorf("the script must return a module table (local M = {} ... return M), got %s", first(rets).Type())
			}
			if _, ok := t.RawGetString("new").(*lua.LFunction); !ok {
				return fmt.Errorf("the module table has no constructor: define function M.new(config, api)")
			}
			modTable = t
			return nil
		}},
		{"parse_config", func(L *lua.LState) *lua.LFunction {
			parsed = toLua(L, mc.Config)
			if parsed == lua.LNil {
				parsed = L.NewTable()
			}
			fn, _ := modTable.RawGetString("parse_config").(*lua.LFunction)
			return fn
		}, func(L *lua.LState) []lua.LValue { return []lua.LValue{parsed} }, func(L *lua.LState, rets []lua.LValue) error {
			parsed = first(rets)
			return nil
		}},
		{"new", func(L *lua.LState) *lua.LFunction {
			api.BeginRegistration()
			return modTable.RawGetString("new").(*lua.LFunction)
		}, func(L *lua.LState) []lua.LValue { return []lua.LValue{parsed, api.Table} }, func(L *lua.LState, rets []lua.LValue) error {
			api.EndRegistration()
			return nil
		}},
	}
	for _, st := range steps {
		if err := run(st.what, st.fn, st.args, st.ret); err != nil {
			var sources map[string][]byte
			g.rt.Post(api.EndRegistration)
			g.rt.Close() // the loop has stopped: its writes are visible
			sources = g.sources
			le := e.loadError(mc, st.what, err)
			le.sources = sources
			return nil, le
		}
	}
	// Copy what other goroutines read, on the loop goroutine.
	done := make(chan struct{})
	g.rt.Post(func() {
		api.EndRegistration()
		g.recording = false
		g.regs = append([]luaapi.Registration(nil), api.Registrations...)
		for _, w := range api.WebResources {
			g.paths = append(g.paths, w.Path)
			wr := webResource{path: w.Path, handler: w.Handler}
			if t, ok := w.Handler.(*lua.LTable); ok {
				t.ForEach(func(k, _ lua.LValue) { wr.methods = append(wr.methods, lua.LVAsString(k)) })
				sort.Strings(wr.methods)
			}
			g.web = append(g.web, wr)
		}
		close(done)
	})
	<-done
	g.loadedAt = time.Now()
	g.fingerprint = fingerprint(mc, g.sources)
	return g, nil
}

func noArgs(*lua.LState) []lua.LValue { return nil }

// LoadError is a module that failed to load. It names the module and
// points at the script line or, for config problems, the config line.
type LoadError struct {
	Module string
	File   string // config file when the problem is in the config
	Line   int
	Err    error
	// sources the failed load read, so a watcher sees fixes to them.
	sources map[string][]byte
}

func (e *LoadError) Error() string {
	var se *ScriptError
	if errors.As(e.Err, &se) && e.File == "" {
		return se.Error() // already names the module and the line
	}
	if e.File != "" && e.Line > 0 {
		return fmt.Sprintf("%s:%d: module %q: %v", e.File, e.Line, e.Module, e.Err)
	}
	return fmt.Sprintf("module %q: %v", e.Module, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

func (e *Engine) loadError(mc ModuleConfig, step string, err error) *LoadError {
	var re *runtime.Error
	if errors.As(err, &re) {
		var ce *luaapi.ConfigError
		if step == "parse_config" && errors.As(re.Value, &ce) {
			return &LoadError{Module: mc.Name, File: e.cfgFile, Line: mc.ConfigLine,
				Err: fmt.Errorf("config: %s (raised at %s:%d)", ce.Msg, re.File, re.Line)}
		}
		se := scriptError(re)
		if step == "parse_config" {
			return &LoadError{Module: mc.Name, File: e.cfgFile, Line: mc.ConfigLine, Err: se}
		}
		return &LoadError{Module: mc.Name, Err: se}
	}
	return &LoadError{Module: mc.Name, Err: fmt.Errorf("%s: %w", step, err)}
}

// LoadErrors is every module that failed to load.
type LoadErrors []error

func (es LoadErrors) Error() string {
	s := fmt.Sprintf("%d module(s) failed to load:", len(es))
	for _, e := range es {
		s += "\n  " + e.Error()
	}
	return s
}
