// Package engine hosts Lua modules for a Matrix homeserver: it loads the
// modules a config lists, each in its own sandboxed Lua state with one
// owner goroutine, and exposes typed invokers (CheckEventForSpam, ...) and
// an http.Handler for the modules' web resources.
//
// All exported methods of Engine are safe for concurrent use.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/luaapi"
)

// Options configure an Engine.
type Options struct {
	// Host is the homeserver behind host functions; nil means a host that
	// only knows the config's server_name.
	Host luaapi.Host
	// Logger receives the engine's and the scripts' logs.
	Logger *slog.Logger
	// FS is where module scripts are read; default: the config's folder.
	FS fs.FS
	// Store backs api.store; nil opens the one the config's storage:
	// section names (default: bolt under data_dir). The engine closes only
	// a store it opened.
	Store storage.Store
}

// Engine runs the modules of one config.
type Engine struct {
	cfg     *Config
	cfgFile string
	host    luaapi.Host
	log     *slog.Logger
	fsys    fs.FS

	mu      sync.Mutex // serialises load, reload and close; guards cfg
	gens    []*generation
	seq     int
	closed  bool
	lastErr map[string]loadFailure // by module name; "" for the config
	// failedFiles: what each module's failed load read, for the watcher.
	failedFiles map[string]map[string][]byte
	// storeCfg is fixed at New: a storage change needs a restart.
	storeCfg storage.Config

	snap atomic.Pointer[snapshot]

	// httpClient serves api.http_client for every module (SSRF-guarded).
	httpClient *http.Client
	// store backs api.store. Unless the embedder passed one, it is opened
	// on first use (no data folder appears for modules that never store),
	// and closed with the engine.
	storeMu     sync.Mutex
	store       storage.Store
	ownStore    bool
	storeClosed bool

	notifications chan func()
	notifierDone  chan struct{}
	notifyMu      sync.RWMutex // guards sending on notifications against close
	notifyClosed  bool
	dropped       atomic.Uint64
	lastDropLog   atomic.Int64
}

// snapshot is an immutable view of the loaded modules that invokers read
// without locks; a reload publishes a new one.
type snapshot struct {
	gens      []*generation
	callbacks map[*luaapi.Callback][]binding
	routes    map[string]*route

	// refs counts operations using this snapshot; a reload waits for them
	// to finish before it closes generations this snapshot still uses.
	refs     atomic.Int64
	retired  atomic.Bool
	drained  chan struct{}
	drainOne sync.Once
}

// acquire returns the current snapshot, counted as in use until release:
// its generations stay open until then. Safe from any goroutine.
func (e *Engine) acquire() *snapshot {
	for {
		s := e.snap.Load()
		s.refs.Add(1)
		if !s.retired.Load() {
			return s
		}
		s.release() // a reload just replaced it: take the new one
	}
}

func (s *snapshot) release() {
	if s.refs.Add(-1) == 0 && s.retired.Load() {
		s.drainOne.Do(func() { close(s.drained) })
	}
}

// retire marks s replaced and waits until no operation uses it.
func (s *snapshot) retire() {
	s.retired.Store(true)
	if s.refs.Load() == 0 {
		s.drainOne.Do(func() { close(s.drained) })
	}
	<-s.drained
}

func newSnapshot(gens []*generation) *snapshot {
	return &snapshot{gens: gens, callbacks: map[*luaapi.Callback][]binding{}, routes: map[string]*route{},
		drained: make(chan struct{})}
}

// binding is one module's registration of a callback.
type binding struct {
	gen *generation
	reg luaapi.Registration
}

// New loads every module of cfg. When some modules fail, it returns the
// engine (serving the modules that loaded) together with a LoadErrors
// listing every failure; callers decide whether that is fatal.
func New(ctx context.Context, cfg *Config, opts Options) (*Engine, error) {
	e := &Engine{cfg: cfg, cfgFile: cfg.File, host: opts.Host, log: opts.Logger, fsys: opts.FS,
		lastErr: map[string]loadFailure{}, failedFiles: map[string]map[string][]byte{}, storeCfg: storageConfig(cfg)}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.host == nil {
		e.host = luaapi.UnimplementedHost{Name: cfg.ServerName}
	}
	if e.fsys == nil {
		e.fsys = os.DirFS(cfg.Dir)
	}
	e.httpClient = newHTTPClient(parseAllowlist(cfg.HTTPClient.IPRangeAllowlist, e.log))
	e.store = opts.Store
	gens, errs := e.loadAll(ctx, cfg.Modules)
	gens, cerrs := e.checkConflicts(gens, nil)
	errs = append(errs, cerrs...)
	for _, err := range errs {
		var le *LoadError
		if errors.As(err, &le) {
			e.lastErr[le.Module] = loadFailure{err, time.Now()}
			e.failedFiles[le.Module] = le.sources
		}
	}
	e.gens = gens
	e.publish()
	e.startNotifier()
	if len(errs) > 0 {
		return e, errs
	}
	return e, nil
}

// loadAll loads modules concurrently (each has its own state) and returns
// the ones that loaded, in config order, and every error.
func (e *Engine) loadAll(ctx context.Context, mcs []ModuleConfig) ([]*generation, LoadErrors) {
	gens := make([]*generation, len(mcs))
	errs := make([]error, len(mcs))
	var wg sync.WaitGroup
	for i, mc := range mcs {
		e.seq++
		seq := e.seq
		wg.Add(1)
		go func() {
			defer wg.Done()
			gens[i], errs[i] = e.loadModule(ctx, mc, seq)
		}()
	}
	wg.Wait()
	var out []*generation
	var lerrs LoadErrors
	for i := range mcs {
		if errs[i] != nil {
			lerrs = append(lerrs, errs[i])
			continue
		}
		out = append(out, gens[i])
	}
	return out, lerrs
}

func (e *Engine) publish() {
	s := newSnapshot(e.gens)
	controller := ""
	for _, g := range e.gens {
		for _, r := range g.regs {
			if r.Callback.Category == "background_update_controller" {
				// Only the first registering module controls updates.
				if controller == "" {
					controller = g.cfg.Name
				} else if controller != g.cfg.Name {
					e.log.Warn("a background update controller is already registered; ignoring this one",
						"module", g.cfg.Name, "controller", controller)
					continue
				}
			}
			s.callbacks[r.Callback] = append(s.callbacks[r.Callback], binding{gen: g, reg: r})
		}
	}
	s.routes = e.buildRoutes(e.gens)
	if old := e.snap.Swap(s); old != nil {
		old.retire()
	}
}

// checkConflicts refuses a module that declares a login type another
// module (earlier in the config, or already running) declares with
// different fields: the homeserver could not tell clients which fields to
// send. The refused module is closed and reported.
func (e *Engine) checkConflicts(gens, running []*generation) ([]*generation, LoadErrors) {
	type decl struct {
		module string
		fields []string
	}
	seen := map[string]decl{}
	for _, g := range running {
		for _, r := range g.regs {
			if r.LoginType != "" {
				seen[r.LoginType] = decl{g.cfg.Name, r.Fields}
			}
		}
	}
	var kept []*generation
	var errs LoadErrors
	for _, g := range gens {
		var conflict error
		for _, r := range g.regs {
			if r.LoginType == "" {
				continue
			}
			if d, ok := seen[r.LoginType]; ok && d.module != g.cfg.Name && !sameFields(d.fields, r.Fields) {
				conflict = fmt.Errorf("login type %q is already declared by module %q with fields [%s]; this module declares [%s]",
					r.LoginType, d.module, strings.Join(d.fields, ", "), strings.Join(r.Fields, ", "))
				break
			}
		}
		if conflict != nil {
			errs = append(errs, &LoadError{Module: g.cfg.Name, Err: conflict})
			e.retire(g)
			continue
		}
		for _, r := range g.regs {
			if r.LoginType != "" {
				if _, ok := seen[r.LoginType]; !ok {
					seen[r.LoginType] = decl{g.cfg.Name, r.Fields}
				}
			}
		}
		kept = append(kept, g)
	}
	return kept, errs
}

func sameFields(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// Close retires every module: in-flight calls finish, then on_close
// callbacks run and the states are freed. No goroutine outlives Close.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.stopNotifier()
	if old := e.snap.Swap(newSnapshot(nil)); old != nil {
		old.retire()
	}
	for _, g := range e.gens {
		e.retire(g)
	}
	e.gens = nil
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	e.storeClosed = true
	if e.ownStore && e.store != nil {
		return e.store.Close()
	}
	return nil
}

// Store returns the store behind api.store, opening it on first use.
// Safe from any goroutine.
func (e *Engine) Store() (storage.Store, error) {
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	if e.store != nil {
		return e.store, nil
	}
	if e.storeClosed {
		return nil, storage.ErrClosed
	}
	// Not e.Config(): a reload holds e.mu while constructors use the store.
	st, err := storage.Open(e.storeCfg)
	if err != nil {
		return nil, err
	}
	e.store, e.ownStore = st, true
	return st, nil
}

// storageConfig resolves the storage: section (bolt under data_dir, by
// default a luahost-data folder beside the config file).
func storageConfig(cfg *Config) storage.Config {
	sc := storage.Config{Backend: cfg.Storage.Backend, URL: cfg.Storage.URL}
	if sc.Backend == "" {
		sc.Backend = "bolt"
	}
	if sc.Backend == "bolt" {
		dir := cfg.DataDir
		if dir == "" {
			dir = "luahost-data"
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cfg.Dir, dir)
		}
		sc.Path = storage.DefaultPath(dir)
	}
	return sc
}

// retire runs a generation's on_close callbacks and closes its runtime.
func (e *Engine) retire(g *generation) {
	ctx := context.Background()
	var fns []int
	done := make(chan struct{})
	if g.rt.post(func() {
		for i := range g.api.OnClose {
			fns = append(fns, i)
		}
		close(done)
	}) {
		<-done
	}
	for _, i := range fns {
		err := g.rt.invoke(ctx, call{what: "on_close", timeout: g.cfg.Timeout,
			resolve: func(*lua.LState) *lua.LFunction { return g.api.OnClose[i] }, args: noArgs})
		if err != nil {
			e.log.Error("on_close failed", "module", g.cfg.Name, "err", err)
		}
	}
	g.rt.close()
}

// Config returns the config the engine runs (the latest reloaded one).
func (e *Engine) Config() *Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg
}

// ModuleInfo describes a loaded module.
type ModuleInfo struct {
	Name       string
	File       string
	Generation int
	LoadedAt   time.Time
	Callbacks  []string // "spam_checker.check_event_for_spam", ...
	Paths      []string // web resources
}

// Modules lists the loaded modules in config order.
func (e *Engine) Modules() []ModuleInfo {
	s := e.snap.Load()
	out := make([]ModuleInfo, 0, len(s.gens))
	for _, g := range s.gens {
		mi := ModuleInfo{Name: g.cfg.Name, File: g.cfg.Module, Generation: g.seq, LoadedAt: g.loadedAt,
			Paths: append([]string(nil), g.paths...)}
		seen := map[string]bool{}
		for _, r := range g.regs {
			id := r.Callback.ID()
			if r.LoginType != "" {
				id += "[" + r.LoginType + "]"
			}
			if !seen[id] {
				seen[id] = true
				mi.Callbacks = append(mi.Callbacks, id)
			}
		}
		out = append(out, mi)
	}
	return out
}

// Has reports whether any module registered the callback ("category.name"
// or a bare name), so a homeserver can skip work (loading room state) when
// none did.
func (e *Engine) Has(callback string) bool {
	cb, err := luaapi.LookupCallback(callback)
	if err != nil {
		return false
	}
	return len(e.snap.Load().callbacks[cb]) > 0
}

// Paths lists every registered web resource path, sorted.
func (e *Engine) Paths() []string {
	s := e.snap.Load()
	out := make([]string, 0, len(s.routes))
	for p := range s.routes {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// invokeBinding calls one module's registered function.
func (e *Engine) invokeBinding(ctx context.Context, b binding, args func(*lua.LState) []lua.LValue, ret func(*lua.LState, []lua.LValue) error) error {
	g := b.gen
	return g.rt.invoke(ctx, call{what: b.reg.Callback.Name, fn: b.reg.Fn, args: args, ret: ret, timeout: g.cfg.Timeout})
}

// logScriptError logs a callback error with its traceback.
func (e *Engine) logScriptError(msg string, err error) {
	var se *ScriptError
	if errors.As(err, &se) && se.Traceback != "" {
		e.log.Error(msg, "err", err, "traceback", se.Traceback)
		return
	}
	e.log.Error(msg, "err", err)
}

// denyOnError reports whether a module is configured to fail closed.
func (g *generation) denyOnError() bool { return g.cfg.OnError == "deny" }
