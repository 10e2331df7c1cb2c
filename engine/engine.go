// Package engine hosts Lua modules for a Matrix homeserver, on the model of
// Synapse's module API. It is everything a homeserver author touches:
//
//   - Start (or New) loads the modules a config lists, each in its own
//     sandboxed Lua state, and keeps them reloading as their files change;
//   - the typed invokers (CheckEventForSpam, UserMayInvite,
//     CheckEventAllowed, ...) ask the modules at the homeserver's hook
//     points and combine their answers with Synapse's rules;
//   - Handler serves the modules' web resources;
//   - Host and its one-capability interfaces are what the homeserver
//     implements for the modules' api.* functions.
//
// A nil *Engine is valid and means "no modules": Has reports false and
// every invoker returns the answer that lets the operation proceed.
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
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/internal/clock"
	"github.com/luahost/luahost/internal/testhooks"
	"github.com/luahost/luahost/luaapi"
)

// Options configure an Engine. The zero value works: a host that knows
// only the config's server_name, logs to slog.Default, scripts read from
// the config's folder, api.store as the config's storage: says.
type Options struct {
	// Host is the homeserver behind the host functions; nil means a host
	// that knows only the server name. When both the config and the host
	// name a server, they must agree.
	Host Host
	// Logger receives the engine's and the scripts' logs.
	Logger *slog.Logger
	// FS is where module scripts are read; default: the config's folder,
	// read through os.Root so that no symlink leads a module: entry out of
	// it (unless the config's module_dirs: allows the target) or a
	// require out of the module's own folder. An FS given here is used as
	// it is: its own rules decide what it serves.
	FS fs.FS
	// Store backs api.store; nil opens the one the config's storage:
	// section names. The engine closes only a store it opened.
	Store storage.Store
	// AllowPartial makes New and Start succeed when some modules fail to
	// load: the others serve, Status reports the failures, and a watched
	// file fix loads them. By default any failure is an error.
	AllowPartial bool
	// NoWatch turns off reloading on file changes in Start (Reload still
	// works, e.g. on SIGHUP).
	NoWatch bool
	// Watcher, when set, is how Start (and Watch) learn about file
	// changes; the default polls the files twice a second. Import
	// github.com/luahost/luahost/engine/fswatch for OS file notifications.
	Watcher func() (FileWatcher, error)
	// Libraries are Go values scripts may require by name (see
	// library.go).
	Libraries map[string]any
	// HostHonoursContext says every Host method returns promptly once
	// its context is done (or never blocks). Host calls then run on the
	// calling goroutine, saving a goroutine hand-off each (~1 µs). Leave it
	// false if a method might ignore its context: each host call then runs
	// on a goroutine of its own, so the script's caller gets its answer at
	// the deadline whatever the host does.
	HostHonoursContext bool
	// Observer, when set, receives the engine's events (calls, web
	// requests, host calls, loads, store operations, http_client
	// requests, dropped notifications) for metrics and tracing; see
	// engine/prommetrics. nil costs nothing.
	Observer Observer
}

// Engine runs the modules of one config.
type Engine struct {
	cfg     *Config
	cfgFile string
	host    Host
	log     *slog.Logger
	fsys    fs.FS
	// maxResponse caps a web handler's response body (http_server:).
	maxResponse atomic.Int64
	// moduleDirs are the config's module_dirs:, resolved (files.go).
	moduleDirs atomic.Pointer[[]string]
	opts       Options

	mu     sync.Mutex // serialises load, reload and close; guards cfg
	gens   []*generation
	closed bool
	// generation counts each module's successful loads (kept when a
	// module leaves the config, so its numbers never repeat).
	generation map[string]int
	lastErr    map[string]loadFailure // by module name; "" for the config
	// memEvents are the memory restarts, by module name, for Status.
	memEvents map[string]loadFailure
	// failedFiles: what each module's failed load read, for the watcher.
	failedFiles map[string]map[string][]byte
	// storeCfg is fixed at New: a storage change needs a restart.
	storeCfg storage.Config
	// site is fixed at New too: email:, public_baseurl:, instance_name:.
	site siteConfig
	// scriptDir is the folder e.fsys reads when the engine chose it
	// (os.DirFS of the config's folder); "" for an embedder's Options.FS.
	scriptDir string
	// bg says whether this instance runs background tasks (background.go);
	// fixed at New too.
	bg *background

	snap atomic.Pointer[snapshot]
	// view is what Status and Ready read without e.mu (a reload holds it
	// for as long as modules take to load); updated with e.mu held.
	view atomic.Pointer[statusView]

	obs    Observer
	redact redactor
	// storeName labels store operations for the observer.
	storeName string

	// httpClient serves api.http_client for every module (SSRF-guarded).
	httpClient *http.Client
	// store backs api.store. Unless the embedder passed one, it is opened
	// on first use (no data folder appears for modules that never store),
	// and closed with the engine.
	storeMu     sync.Mutex
	store       storage.Store
	ownStore    bool
	storeClosed bool

	notifier notifier
	// retiring counts replaced generations waiting for their holds;
	// closing (closed by Close) stops the wait.
	retiring sync.WaitGroup
	closing  chan struct{}
	// fake is the clock `luahost test` runs modules on (testhooks on
	// New's context); nil: real time.
	fake *clock.Fake
	// stopWatch ends the watcher Start began; watchDone reports its end.
	stopWatch context.CancelFunc
	watchDone <-chan error
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
	idx int // the registration's index in gen.regs and gen.fns
	reg luaapi.Registration
}

// Start reads the config file, loads every module, logs what loaded and
// what failed, and (unless opts.NoWatch) reloads modules when their files
// change. The engine closes itself when ctx ends; Close closes it sooner.
// It returns an engine or an error, never both (see Options.AllowPartial).
func Start(ctx context.Context, configFile string, opts Options) (*Engine, error) {
	cfg, err := LoadConfig(configFile)
	if err != nil {
		return nil, err
	}
	e, err := New(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	for _, st := range e.Status() {
		if st.Serving {
			e.log.Info("module loaded", "module", st.Name, "file", st.File)
		}
	}
	if !opts.NoWatch {
		wctx, stop := context.WithCancel(context.Background())
		done, err := e.StartWatch(wctx)
		if err != nil {
			stop()
			e.log.Warn("file watching is off; reload with Reload", "err", err)
		} else {
			e.stopWatch, e.watchDone = stop, done
		}
	}
	go func() {
		<-ctx.Done()
		e.Close()
	}()
	return e, nil
}

// New loads every module of cfg. It returns an engine or an error, never
// both: when a module fails, the others are closed and the error lists
// every failure (LoadErrors), unless opts.AllowPartial is set.
func New(ctx context.Context, cfg *Config, opts Options) (*Engine, error) {
	e := &Engine{cfg: cfg, cfgFile: cfg.File, host: opts.Host, fsys: opts.FS, opts: opts, obs: opts.Observer,
		lastErr: map[string]loadFailure{}, failedFiles: map[string]map[string][]byte{}, memEvents: map[string]loadFailure{},
		closing: make(chan struct{}), generation: map[string]int{}}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	e.redact.add(cfg.secrets)
	e.log = slog.New(&redactHandler{inner: log.Handler(), r: &e.redact})
	if err := e.resolveServerName(); err != nil {
		return nil, err
	}
	e.storeCfg = storageConfig(cfg)
	setMemoryLimit(cfg)
	e.site = siteOf(cfg)
	dirs := resolveModuleDirs(cfg)
	e.moduleDirs.Store(&dirs)
	e.storeName = e.storeCfg.Backend
	if opts.Store != nil {
		e.storeName = "custom"
	}
	if e.fsys == nil {
		e.fsys = rootFS{dir: cfg.Dir, extra: e.extraDirs, what: "the config file's folder"}
		e.scriptDir = cfg.Dir
	}
	e.httpClient = newHTTPClient(httpPolicy(cfg.HTTPClient.IPRangeAllowlist, e.log))
	if h := testhooks.From(ctx); h != nil {
		e.fake = h.Clock
		if h.Transport != nil {
			e.httpClient = &http.Client{Transport: h.Transport, CheckRedirect: e.httpClient.CheckRedirect}
		}
	}
	e.store = opts.Store
	if e.store == nil && cfg.Storage.Backend != "" {
		// A backend the admin chose is opened now, so a wrong Redis URL
		// stops start-up instead of failing the first api.store call.
		if _, err := e.openStore(); err != nil {
			return nil, e.redactErr(fmt.Errorf("storage: %w", err))
		}
	}
	if err := e.startBackground(cfg); err != nil {
		if e.ownStore && e.store != nil {
			e.store.Close()
		}
		return nil, err
	}
	gens, errs := e.loadAll(ctx, cfg.Modules)
	gens, cerrs := e.checkConflicts(gens, nil)
	errs = e.redactErrs(append(errs, cerrs...))
	now := time.Now()
	for _, err := range errs {
		var le *LoadError
		if errors.As(err, &le) {
			e.lastErr[le.Module] = loadFailure{err, now}
			e.failedFiles[le.Module] = le.sources
			e.observeLoad(le.Module, LoadFailed, false, err, now)
		}
	}
	for _, g := range gens {
		e.accept(g)
		e.observeLoad(g.cfg.Name, LoadOK, false, nil, now)
	}
	e.gens = gens
	e.publish()
	e.updateView()
	e.notifier.start()
	if len(errs) > 0 {
		if opts.AllowPartial {
			for _, err := range errs {
				e.log.Error("module failed to load; the others serve", "err", err)
			}
			return e, nil
		}
		e.Close()
		return nil, errs
	}
	return e, nil
}

// resolveServerName takes the server name from the host when the config
// leaves it out; a config and a host that disagree are an error.
func (e *Engine) resolveServerName() error {
	cfgName := e.cfg.ServerName
	switch {
	case e.host == nil && cfgName == "":
		e.cfg.ServerName = "localhost"
		e.host = serverOnly("localhost")
	case e.host == nil:
		e.host = serverOnly(cfgName)
	case cfgName == "":
		e.cfg.ServerName = e.host.ServerName()
	case cfgName != e.host.ServerName():
		return &ConfigError{File: e.cfg.File, Line: e.cfg.serverNameLine,
			Msg: fmt.Sprintf("server_name %q does not match the homeserver's %q (leave server_name out to use the homeserver's)", cfgName, e.host.ServerName())}
	}
	return nil
}

// loadConcurrency bounds the loads in flight. Unbounded, 500 modules'
// compiler garbage interleaves with what they keep, and the fragmented
// heap held 25% more RSS after start; a few loads per core keep the CPUs
// busy and let a constructor that waits on the host not hold up the rest.
const loadConcurrency = 16

// loadAll loads modules concurrently (each has its own state) and returns
// the ones that loaded, in config order, and every error.
func (e *Engine) loadAll(ctx context.Context, mcs []ModuleConfig) ([]*generation, LoadErrors) {
	gens := make([]*generation, len(mcs))
	errs := make([]error, len(mcs))
	var wg sync.WaitGroup
	slots := make(chan struct{}, loadConcurrency)
	for i, mc := range mcs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			gens[i], errs[i] = e.loadModule(ctx, mc)
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
	owner := map[string]string{} // category -> the module that controls it
	for _, g := range e.gens {
		for idx, r := range g.regs {
			if cat := luaapi.CategoryOf(r.Callback); cat.FirstModuleOnly {
				if o, ok := owner[cat.Name]; !ok {
					owner[cat.Name] = g.cfg.Name
				} else if o != g.cfg.Name {
					e.log.Warn("only the first module registering "+cat.RegisterFunc()+" is used; ignoring this one",
						"module", g.cfg.Name, "used", o)
					continue
				}
			}
			s.callbacks[r.Callback] = append(s.callbacks[r.Callback], binding{gen: g, idx: idx, reg: r})
		}
	}
	s.routes = e.buildRoutes(e.gens)
	e.maxResponse.Store(int64(e.cfg.HTTPServer.MaxResponseBody))
	if old := e.snap.Swap(s); old != nil {
		old.retire()
	}
}

// checkConflicts refuses a module that declares a login type another
// module (earlier in the config, or already running) declares with
// different fields (the homeserver could not tell clients which fields to
// send), or that registers a callback only one module may register
// (on_legacy_*) which another module registered already. The refused
// module is closed and reported.
func (e *Engine) checkConflicts(gens, running []*generation) ([]*generation, LoadErrors) {
	type decl struct {
		module string
		fields []string
	}
	seen := map[string]decl{}
	// single: the module holding each callback only one module may
	// register (Synapse raises at a second registration).
	single := map[*luaapi.Callback]string{}
	for _, g := range running {
		for _, r := range g.regs {
			if r.LoginType != "" {
				seen[r.LoginType] = decl{g.cfg.Name, r.Fields}
			}
			if r.Callback.Single {
				single[r.Callback] = g.cfg.Name
			}
		}
	}
	var kept []*generation
	var errs LoadErrors
	for _, g := range gens {
		var conflict error
		for _, r := range g.regs {
			if owner, ok := single[r.Callback]; ok && r.Callback.Single && owner != g.cfg.Name {
				conflict = fmt.Errorf("%s is already registered by module %q: Synapse allows only one module to register it", r.Callback.Name, owner)
				break
			}
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
			if r.Callback.Single {
				if _, ok := single[r.Callback]; !ok {
					single[r.Callback] = g.cfg.Name
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
	if e == nil {
		return nil
	}
	if e.stopWatch != nil {
		e.stopWatch()
		<-e.watchDone
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	close(e.closing)
	e.retiring.Wait()
	e.notifier.stop()
	if old := e.snap.Swap(newSnapshot(nil)); old != nil {
		old.retire()
	}
	// All at once: a module wedged in Go code costs its grace once, not
	// once per module behind it.
	var wg sync.WaitGroup
	for _, g := range e.gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.retire(g)
		}()
	}
	wg.Wait()
	e.gens = nil
	e.updateView()
	// Released only now: the background calls in flight finished above,
	// still holding the lease.
	e.bg.close(e)
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	e.storeClosed = true
	if e.ownStore && e.store != nil {
		return e.store.Close()
	}
	return nil
}

// openStore returns the store behind api.store, opening it on first use.
// Safe from any goroutine.
func (e *Engine) openStore() (storage.Store, error) {
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

// storageConfig resolves the storage: section. Without one, api.store is
// the bolt file under data_dir (a luahost-data folder beside the config
// file) when the bolt backend is linked (luahost serve links it; an
// embedder imports engine/storage/bolt), else it lives in memory.
func storageConfig(cfg *Config) storage.Config {
	sc := storage.Config{Backend: cfg.Storage.Backend, URL: cfg.Storage.URL}
	if sc.Backend == "" {
		sc.Backend = "memory"
		if slices.Contains(storage.Backends(), "bolt") {
			sc.Backend = "bolt"
		}
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

// retire runs a generation's on_close callbacks (in every instance) and
// closes its runtimes.
func (e *Engine) retire(g *generation) {
	ctx := context.Background()
	for i, in := range g.insts {
		var fns []*lua.LFunction
		in.rt.Do(func(*lua.LState) { fns = append(fns, in.api.OnClose...) })
		for _, fn := range fns {
			if err := g.invokeOn(i+1, ctx, runtime.Call{What: "on_close", Fn: fn, Timeout: g.cfg.Timeout}); err != nil {
				e.log.Error("on_close failed", "module", g.cfg.Name, "err", err)
			}
		}
	}
	g.close()
}

// Config returns the config the engine runs (the latest reloaded one).
func (e *Engine) Config() *Config {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg
}

// Has reports whether any module registered the callback, so a
// homeserver can skip work (loading room state) when none did.
func (e *Engine) Has(cb Callback) bool {
	if e == nil || cb <= 0 || int(cb) >= len(callbacks) {
		return false
	}
	return len(e.snap.Load().callbacks[callbacks[cb]]) > 0
}

// Paths lists every registered web resource path, sorted.
func (e *Engine) Paths() []string {
	if e == nil {
		return nil
	}
	s := e.snap.Load()
	out := make([]string, 0, len(s.routes))
	for p := range s.routes {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// logScriptError logs a callback error with its traceback.
func (e *Engine) logScriptError(msg string, err error, attrs ...any) {
	var se *ScriptError
	if errors.As(err, &se) && se.Traceback != "" {
		e.log.Error(msg, append(attrs, "err", err, "traceback", se.Traceback)...)
		return
	}
	e.log.Error(msg, append(attrs, "err", err)...)
}
