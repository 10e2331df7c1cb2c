package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// generation is one load of a module: its states (one per instance),
// their runtimes and registrations. A reload builds a new generation
// beside the old one.
type generation struct {
	cfg   ModuleConfig
	eng   *Engine
	set   *runtime.Set
	insts []*instance
	// seq is the module's generation number, set when the engine accepts
	// the load: it counts successful loads only.
	seq      int
	loadedAt time.Time
	// sources are the script and the local files require looked for while
	// loading, with the content read (nil: missing); reload compares them.
	// Written with instance 1's baton while recording, read-only after.
	sources   map[string][]byte
	recording bool
	// Read-only copies made at load, safe from any goroutine (instance
	// 1's; every instance registers the same):
	regs  []luaapi.Registration
	paths []string
	web   []webResource
	// fns[i][k] is registration i's function in instance k+1.
	fns [][]*lua.LFunction
	// fingerprint hashes the config entry and files this was built from.
	fingerprint string
	// restarting is set once a memory restart of this generation began.
	restarting atomic.Bool
	// holds count what may still run on g after a reload (see hold).
	holdMu sync.Mutex
	holds  int
	unheld chan struct{}
	// resources are closed with the generation (the template folders of
	// api.read_templates). Any instance's baton holder may add one.
	resMu     sync.Mutex
	resources []io.Closer
	roots     map[string]*os.Root // template folders by slash path
}

// instance is one state of a generation.
type instance struct {
	rt  *runtime.Runtime
	api *luaapi.ModuleAPI // its baton holder's only after load
}

// invoke runs a call on an idle instance; a script's failure comes back as
// a *ScriptError.
func (g *generation) invoke(ctx context.Context, c runtime.Call) error {
	return scriptError(g.set.Invoke(ctx, c))
}

// invokeOn runs a call on instance i (1-based).
func (g *generation) invokeOn(i int, ctx context.Context, c runtime.Call) error {
	return scriptError(g.insts[i-1].rt.Invoke(ctx, c))
}

// callOf is the call of registration idx on whichever instance runs it.
func (g *generation) callOf(idx int, what string, args func(*lua.LState) []lua.LValue, ret func(*lua.LState, []lua.LValue) error) runtime.Call {
	c := runtime.Call{What: what, Args: args, Ret: ret, Timeout: g.cfg.Timeout}
	if len(g.insts) == 1 {
		c.Fn = g.fns[idx][0]
	} else {
		fns := g.fns[idx]
		c.Resolve = func(_ *lua.LState, inst int) *lua.LFunction { return fns[inst-1] }
	}
	return c
}

// close closes every instance, then what they opened.
func (g *generation) close() {
	g.set.Close()
	g.closeResources()
}

// addResource closes c with the generation.
func (g *generation) addResource(c io.Closer) {
	g.resMu.Lock()
	defer g.resMu.Unlock()
	g.resources = append(g.resources, c)
}

func (g *generation) closeResources() {
	g.resMu.Lock()
	defer g.resMu.Unlock()
	for _, c := range g.resources {
		c.Close()
	}
	g.resources = nil
}

// loadGrace is how long past its init_timeout a load may run before the
// engine stops waiting for it: only a load stuck in Go code that ignores
// its deadline takes it, and other modules' reloads must not wait on it.
const loadGrace = 2 * time.Second

// loadModule loads a module: every instance runs the script,
// parse_config and the constructor. On error nothing is left running.
func (e *Engine) loadModule(ctx context.Context, mc ModuleConfig) (*generation, error) {
	type result struct {
		g   *generation
		err error
	}
	ch := make(chan result, 1)
	go func() {
		g, err := e.load(ctx, mc)
		ch <- result{g, err}
	}()
	t := time.NewTimer(mc.InitTimeout*time.Duration(max(1, mc.Instances)) + loadGrace)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.g, r.err
	case <-t.C:
		e.log.Error("a module load did not stop at its init_timeout; abandoning it", "module", mc.Name)
		go func() {
			// Should it finish after all, free what it made.
			if r := <-ch; r.g != nil {
				e.retire(r.g)
			}
		}()
		return nil, &LoadError{Module: mc.Name, Err: fmt.Errorf("loading did not stop at its init_timeout of %s: it is stuck in Go code that ignores its deadline", mc.InitTimeout)}
	}
}

func (e *Engine) load(ctx context.Context, mc ModuleConfig) (*generation, error) {
	src, err := fs.ReadFile(e.fsys, mc.Module)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &LoadError{Module: mc.Name, File: e.cfgFile, Line: mc.Line,
				Err: fmt.Errorf("script %s not found (module: is relative to the config file's folder)", mc.Module)}
		}
		var out *outsideError
		if errors.As(err, &out) {
			err = fmt.Errorf("module: %s: %w", mc.Module, out)
		}
		return nil, &LoadError{Module: mc.Name, File: e.cfgFile, Line: mc.Line, Err: err}
	}
	// Checking and parsing a large file takes seconds (16 MB: ~20 s); they
	// stop at init_timeout like the rest of the load.
	cctx, cancel := context.WithTimeout(ctx, mc.InitTimeout)
	proto, err := sandbox.CompileContext(cctx, src, mc.Module)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%s: compiling did not finish within init_timeout (%s)", mc.Module, mc.InitTimeout)
		}
		return nil, &LoadError{Module: mc.Name, Err: err, sources: map[string][]byte{mc.Module: src}}
	}
	n := max(1, mc.Instances)
	g := &generation{cfg: mc, eng: e, sources: map[string][]byte{mc.Module: src}, recording: true}
	rts := make([]*runtime.Runtime, 0, n)
	for i := 1; i <= n; i++ {
		inst, err := e.loadInstance(ctx, g, proto, i)
		if inst != nil {
			g.insts = append(g.insts, inst)
			rts = append(rts, inst.rt)
		}
		if err != nil {
			for _, in := range g.insts {
				in.rt.Close()
			}
			g.closeResources()
			le := err.(*LoadError)
			le.sources = g.sources
			return nil, le
		}
	}
	g.set = runtime.NewSet(rts)
	if err := g.collect(); err != nil {
		g.close()
		return nil, &LoadError{Module: mc.Name, Err: err, sources: g.sources}
	}
	g.loadedAt = time.Now()
	g.fingerprint = fingerprint(mc, g.sources)
	return g, nil
}

// loadInstance makes instance i's state and runs the script, parse_config
// and the constructor in it. On error the instance it returns (if any) is
// closed by the caller.
func (e *Engine) loadInstance(ctx context.Context, g *generation, proto *lua.FunctionProto, i int) (*instance, error) {
	mc := g.cfg
	log := e.log.With("module", mc.Name)
	if mc.Instances > 1 {
		log = log.With("instance", i)
	}
	L := sandbox.NewState()
	api := luaapi.NewModuleAPI(L, mc.Name, e.host.ServerName(), log)
	api.Table.RawSetString("instance", lua.LNumber(i))
	inst := &instance{api: api}
	e.installHostFunctions(L, api, mc)
	e.installTemplates(L, api.Table, g, i)
	e.installTimers(L, api, g, inst, i)
	env := &stdlib.Env{Module: mc.Name, Logger: e.log} // the log library adds module=
	if e.fake != nil {
		e.installFakeClock(L, api.Table)
		env.Now = e.fake.Now
	}
	libs, err := e.libraries(L)
	if err != nil {
		L.Close()
		return nil, &LoadError{Module: mc.Name, Err: err}
	}
	ld := &sandbox.Loader{FS: e.moduleFS(mc), Dir: path.Dir(mc.Module), API: api.Table, Libraries: libs,
		Env: env,
		OnFile: func(p string, src []byte) {
			// Files required later, by a callback, are not part of what
			// this generation was built from; instance 1 records.
			if g.recording && i == 1 {
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
	inst.rt = runtime.New(L, runtime.Options{Module: mc.Name, File: mc.Module, Log: log,
		Instance: i, InlineHostCalls: e.opts.HostHonoursContext,
		MaxMemory: mc.MaxMemory, Roots: inst.roots,
		OnOverLimit: func(size int64) { e.overLimit(g, size) }})

	run := func(what string, resolve func(*lua.LState) *lua.LFunction, args func(*lua.LState) []lua.LValue, ret func(*lua.LState, []lua.LValue) error) error {
		return inst.rt.Invoke(ctx, runtime.Call{What: what, Timeout: mc.InitTimeout, Args: args, Ret: ret,
			Resolve: func(L *lua.LState, _ int) *lua.LFunction { return resolve(L) }})
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
				parsed = L.CreateTable(0, 0)
			}
			fn, _ := modTable.RawGetString("parse_config").(*lua.LFunction)
			return fn
		}, func(L *lua.LState) []lua.LValue { return []lua.LValue{parsed} }, func(L *lua.LState, rets []lua.LValue) error {
			parsed = first(rets)
			if parsed == lua.LNil {
				// Otherwise new() gets nil and fails at its first
				// config.x, far from the mistake.
				se := &ScriptError{Module: mc.Name, Callback: "parse_config", File: mc.Module,
					Msg: "returned nil: end parse_config with `return config` (what it returns is what new() receives)"}
				if fn, ok := modTable.RawGetString("parse_config").(*lua.LFunction); ok && fn.Proto != nil {
					se.File, se.Line = fn.Proto.SourceName, fn.Proto.LastLineDefined
				}
				return se
			}
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
			inst.rt.Do(func(*lua.LState) { api.EndRegistration() })
			return inst, e.loadError(mc, st.what, err)
		}
	}
	inst.rt.Do(func(*lua.LState) { api.EndRegistration() })
	return inst, nil
}

// collect copies what other goroutines read out of every instance (with
// each one's baton) and checks the instances registered the same things.
func (g *generation) collect() error {
	var first []string
	for k, in := range g.insts {
		var regs []luaapi.Registration
		var web []luaapi.WebResource
		in.rt.Do(func(*lua.LState) {
			if k == 0 {
				g.recording = false
			}
			regs = append(regs, in.api.Registrations...)
			web = append(web, in.api.WebResources...)
		})
		ids := make([]string, 0, len(regs)+len(web))
		for _, r := range regs {
			ids = append(ids, r.Callback.ID()+"["+r.LoginType+"]")
		}
		for _, w := range web {
			ids = append(ids, "web:"+w.Path)
		}
		if k == 0 {
			first = ids
			g.regs = regs
			g.fns = make([][]*lua.LFunction, len(regs))
			for _, w := range web {
				g.paths = append(g.paths, w.Path)
				wr := webResource{path: w.Path}
				if t, ok := w.Handler.(*lua.LTable); ok {
					t.ForEach(func(k, _ lua.LValue) { wr.methods = append(wr.methods, lua.LVAsString(k)) })
					sort.Strings(wr.methods)
				}
				g.web = append(g.web, wr)
			}
		} else if strings.Join(ids, ",") != strings.Join(first, ",") {
			return fmt.Errorf("instance %d registered [%s], instance 1 [%s]: every instance must register the same callbacks and web resources",
				k+1, strings.Join(ids, ", "), strings.Join(first, ", "))
		}
		for i, r := range regs {
			g.fns[i] = append(g.fns[i], r.Fn)
		}
		for i, w := range web {
			g.web[i].handlers = append(g.web[i].handlers, w.Handler)
		}
	}
	return nil
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
	var se *ScriptError
	if errors.As(err, &se) {
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

// Holds: what can still run on a generation after its calls returned
// (AuthResult.LoggedIn, UpdateBatch.Done) holds it, so a reload that
// replaces it closes it only once they ran (or after holdMax, in case an
// embedder never calls them). Timers hold their runtime the same way
// (their calls count as in flight).

// holdMax bounds how long an unused hold keeps a replaced generation.
const holdMax = time.Minute

// hold keeps g open until release is called (or holdMax passes). Only
// while g is certainly open: inside a call on it.
func (g *generation) hold() (release func()) {
	g.holdMu.Lock()
	g.holds++
	g.holdMu.Unlock()
	var once sync.Once
	var timer *time.Timer
	release = func() {
		once.Do(func() {
			timer.Stop()
			g.holdMu.Lock()
			g.holds--
			if g.holds == 0 && g.unheld != nil {
				close(g.unheld)
				g.unheld = nil
			}
			g.holdMu.Unlock()
		})
	}
	timer = time.AfterFunc(holdMax, release)
	return release
}

// waitHolds waits until nothing holds g, for up to max or until abort.
func (g *generation) waitHolds(max time.Duration, abort <-chan struct{}) {
	g.holdMu.Lock()
	if g.holds == 0 {
		g.holdMu.Unlock()
		return
	}
	if g.unheld == nil {
		g.unheld = make(chan struct{})
	}
	ch := g.unheld
	g.holdMu.Unlock()
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-abort:
	}
}

// held reports whether something holds g.
func (g *generation) held() bool {
	g.holdMu.Lock()
	defer g.holdMu.Unlock()
	return g.holds > 0
}
