package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"
)

// Reload: build the new generation beside the old, swap, drain, close.
// A module whose script, required files and config entry are unchanged
// keeps its running generation. One that fails to load (syntax error,
// ConfigError, constructor error, timeout) keeps serving its old
// generation; the error is logged and shown by Status. Requests in flight
// finish on the generation they started on: the old snapshot is retired
// only once no operation uses it, and then its replaced generations get
// their on_close callbacks and are closed.

// ModuleStatus is one configured module's state.
type ModuleStatus struct {
	Name       string
	File       string
	Generation int       // counts the module's successful loads; 0 before the first
	LoadedAt   time.Time // when the serving generation loaded
	Serving    bool      // false when the module has never loaded
	// LastError is the latest load failure, nil after a success. Secret
	// config values in its message are redacted.
	LastError error
	ErrorAt   time.Time
	// Instances is how many Lua states run the serving generation.
	Instances int
	// Files are the files the serving generation was loaded from: the
	// script and what it required, relative to the config's folder.
	Files []string
	// Callbacks the serving generation registered
	// ("spam_checker.check_event_for_spam", "password_auth_provider.auth_checkers[m.login.password]").
	Callbacks []string
	// Paths are its web resources.
	Paths []string
	// MemoryRestart is the latest restart for memory (a state held more
	// than max_memory), with its time; nil if none.
	MemoryRestart   error
	MemoryRestartAt time.Time
}

// statusView is the engine's state as Status and Ready report it,
// rebuilt after every load, reload and close.
type statusView struct {
	modules []ModuleStatus
	cfgErr  error // the last reload's config error, nil after a good one
	closed  bool
}

// updateView publishes the state for Status. e.mu held.
func (e *Engine) updateView() {
	serving := map[string]*generation{}
	for _, g := range e.gens {
		serving[g.cfg.Name] = g
	}
	v := &statusView{}
	for _, mc := range e.cfg.Modules {
		st := ModuleStatus{Name: mc.Name, File: mc.Module}
		if g := serving[mc.Name]; g != nil {
			st.Generation, st.LoadedAt, st.Serving = g.seq, g.loadedAt, true
			st.Instances = len(g.insts)
			st.Callbacks, st.Paths = g.registered(), append([]string(nil), g.paths...)
			for f, src := range g.sources {
				if src != nil {
					st.Files = append(st.Files, f)
				}
			}
			sort.Strings(st.Files)
		} else {
			st.Generation = e.generation[mc.Name]
		}
		if m, ok := e.memEvents[mc.Name]; ok {
			st.MemoryRestart, st.MemoryRestartAt = m.err, m.at
		}
		if le, ok := e.lastErr[mc.Name]; ok {
			st.LastError, st.ErrorAt = le.err, le.at
		}
		v.modules = append(v.modules, st)
	}
	if le, ok := e.lastErr[""]; ok {
		v.cfgErr = le.err
	}
	v.closed = e.closed
	e.view.Store(v)
}

// Status lists the configured modules in config order with their state.
// It never waits for a reload in progress: it shows the state before it.
func (e *Engine) Status() []ModuleStatus {
	if e == nil {
		return nil
	}
	v := e.view.Load()
	if v == nil {
		return nil
	}
	out := make([]ModuleStatus, len(v.modules))
	for i, st := range v.modules {
		st.Files = slices.Clone(st.Files)
		st.Callbacks = slices.Clone(st.Callbacks)
		st.Paths = slices.Clone(st.Paths)
		out[i] = st
	}
	return out
}

// ConfigReloadError is the error of the last reload that could not read
// or parse the config file (the running modules kept serving); nil once a
// reload read it.
func (e *Engine) ConfigReloadError() error {
	if e == nil {
		return nil
	}
	if v := e.view.Load(); v != nil {
		return v.cfgErr
	}
	return nil
}

// Ready reports whether the engine can serve as configured: nil when
// every configured module has a generation serving and the store answers
// a read; otherwise an error saying what is missing. A module whose newest
// version failed to load but whose previous one serves counts as ready.
// The store is only asked once something opened it (the default bolt
// file opens on first use). ctx bounds the store's answer. Safe from any
// goroutine; it never waits for a reload in progress.
func (e *Engine) Ready(ctx context.Context) error {
	if e == nil {
		return nil
	}
	if v := e.view.Load(); v == nil || v.closed {
		return errors.New("the engine is closed")
	}
	var problems []string
	for _, st := range e.Status() {
		if st.Serving {
			continue
		}
		msg := fmt.Sprintf("module %q is not loaded", st.Name)
		if st.LastError != nil {
			msg += ": " + st.LastError.Error()
		}
		problems = append(problems, msg)
	}
	e.storeMu.Lock()
	st := e.store
	e.storeMu.Unlock()
	if st != nil {
		if _, _, err := st.Get(ctx, readyNamespace, "ready"); err != nil {
			problems = append(problems, e.redact.redact(fmt.Sprintf("storage (%s) does not answer: %v", e.storeName, err)))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// readyNamespace is where Ready reads a key that is never written.
const readyNamespace = "luahost.ready"

type loadFailure struct {
	err error
	at  time.Time
}

// accept numbers a generation the engine is about to serve. e.mu held.
func (e *Engine) accept(g *generation) {
	e.generation[g.cfg.Name]++
	g.seq = e.generation[g.cfg.Name]
}

// observeLoad tells the observer about a load. e.mu held.
func (e *Engine) observeLoad(module string, outcome LoadOutcome, reload bool, err error, at time.Time) {
	if e.obs == nil {
		return
	}
	gen := 0
	for _, g := range e.gens {
		if g.cfg.Name == module {
			gen = g.seq
		}
	}
	if outcome == LoadOK {
		gen = e.generation[module]
	}
	if outcome == LoadRemoved {
		gen = 0
	}
	e.obs.ModuleLoad(LoadEvent{Module: module, Outcome: outcome, Generation: gen, Reload: reload, Err: err, At: at})
}

// fingerprint identifies what a generation was built from: its config
// entry (not where it sits in the file: a comment added above it changes
// nothing) and the content of every file its load read.
func fingerprint(mc ModuleConfig, sources map[string][]byte) string {
	h := sha256.New()
	mc.Line, mc.ConfigLine = 0, 0
	cfgJSON, _ := json.Marshal(struct {
		M ModuleConfig
		C any
	}{mc, mc.Config})
	h.Write(cfgJSON)
	paths := make([]string, 0, len(sources))
	for p := range sources {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		src := sources[p]
		if src == nil {
			fmt.Fprintf(h, "\x00%s:missing", p)
			continue
		}
		fmt.Fprintf(h, "\x00%s:%d:", p, len(src))
		h.Write(src)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// onDisk is the fingerprint mc would have if loaded now from the same files.
func (e *Engine) onDisk(mc ModuleConfig, files map[string][]byte) string {
	now := make(map[string][]byte, len(files))
	mfs := e.moduleFS(mc)
	for p := range files {
		from := mfs // what require read
		if p == mc.Module {
			from = e.fsys
		}
		b, err := fs.ReadFile(from, p)
		if err != nil {
			b = nil
		} else if b == nil {
			b = []byte{}
		}
		now[p] = b
	}
	return fingerprint(mc, now)
}

// Reload re-reads the config file the engine was loaded from (when it
// was loaded from one) and every module's files, and reloads what changed.
// It returns LoadErrors for modules that failed; those keep serving their
// previous generation. Safe from any goroutine.
func (e *Engine) Reload(ctx context.Context) error {
	cfg := e.Config()
	if cfg.File != "" && cfg.fromDisk {
		fresh, err := LoadConfig(cfg.File)
		if err != nil {
			e.log.Error("reload: config has errors; keeping the running modules", "err", err)
			e.mu.Lock()
			now := time.Now()
			e.lastErr[""] = loadFailure{err, now}
			e.observeLoad("", LoadFailed, true, err, now)
			e.updateView()
			e.mu.Unlock()
			return err
		}
		cfg = fresh
	}
	return e.ReloadWith(ctx, cfg, nil)
}

// ReloadModule reloads one module by name (config unchanged), even if its
// files did not change.
func (e *Engine) ReloadModule(ctx context.Context, name string) error {
	cfg := e.Config()
	for _, mc := range cfg.Modules {
		if mc.Name == name {
			return e.ReloadWith(ctx, cfg, map[string]bool{name: true})
		}
	}
	return fmt.Errorf("reload: no module named %q", name)
}

// ReloadWith reloads against cfg: modules added are loaded, removed ones
// retired, reordered ones follow the new order, and changed ones (or
// those named in force) get a new generation.
func (e *Engine) ReloadWith(ctx context.Context, cfg *Config, force map[string]bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	dirs := resolveModuleDirs(cfg)
	e.moduleDirs.Store(&dirs)
	if e.closed {
		return errors.New("reload: engine is closed")
	}
	running := map[string]*generation{}
	for _, g := range e.gens {
		running[g.cfg.Name] = g
	}
	// Decide what to load.
	var toLoad []ModuleConfig
	for _, mc := range cfg.Modules {
		old := running[mc.Name]
		if old != nil && !force[mc.Name] && old.fingerprint == e.onDisk(mc, old.sources) {
			continue
		}
		toLoad = append(toLoad, mc)
	}
	loaded, errs := e.loadAll(ctx, toLoad)
	fresh := map[string]*generation{}
	for _, g := range loaded {
		fresh[g.cfg.Name] = g
	}
	// Login-type conflicts: a refused new generation falls back to the old.
	var kept []*generation
	for _, mc := range cfg.Modules {
		if g := running[mc.Name]; g != nil && fresh[mc.Name] == nil {
			kept = append(kept, g)
		}
	}
	accepted, cerrs := e.checkConflicts(loaded, kept)
	errs = append(errs, cerrs...)
	acceptedSet := map[*generation]bool{}
	for _, g := range accepted {
		acceptedSet[g] = true
	}
	// The new order: the config's, each module on its new generation if
	// one loaded, else its old one.
	var next []*generation
	for _, mc := range cfg.Modules {
		if g := fresh[mc.Name]; g != nil && acceptedSet[g] {
			next = append(next, g)
		} else if g := running[mc.Name]; g != nil {
			next = append(next, g)
		}
	}
	inNext := map[*generation]bool{}
	for _, g := range next {
		inNext[g] = true
	}
	var retire []*generation
	for _, g := range e.gens {
		if !inNext[g] {
			retire = append(retire, g)
		}
	}
	// Record outcomes.
	e.redact.add(cfg.secrets)
	errs = e.redactErrs(errs)
	now := time.Now()
	failed := map[string]bool{}
	for _, err := range errs {
		var le *LoadError
		if errors.As(err, &le) {
			failed[le.Module] = true
			e.lastErr[le.Module] = loadFailure{err, now}
			e.failedFiles[le.Module] = le.sources
			if running[le.Module] != nil {
				e.log.Error("reload failed; the previous version keeps serving", "module", le.Module, "err", err)
			} else {
				e.log.Error("module failed to load", "module", le.Module, "err", err)
			}
			e.observeLoad(le.Module, LoadFailed, true, err, now)
		}
	}
	for _, g := range accepted {
		if !failed[g.cfg.Name] {
			delete(e.lastErr, g.cfg.Name)
			delete(e.failedFiles, g.cfg.Name)
			e.accept(g)
			if running[g.cfg.Name] != nil {
				e.log.Info("module reloaded", "module", g.cfg.Name, "generation", g.seq)
			} else {
				e.log.Info("module loaded", "module", g.cfg.Name, "generation", g.seq)
			}
			e.observeLoad(g.cfg.Name, LoadOK, true, nil, now)
		}
	}
	delete(e.lastErr, "")
	for _, g := range retire {
		if !inConfig(cfg, g.cfg.Name) {
			delete(e.lastErr, g.cfg.Name)
			e.log.Info("module removed", "module", g.cfg.Name)
			e.observeLoad(g.cfg.Name, LoadRemoved, true, nil, now)
		}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = e.host.ServerName() // as New does
	}
	settings := restartOnlyChanges(e.cfg, cfg)
	for _, name := range settings {
		e.log.Warn("reload: "+name+" changed in the config; it takes effect only after a restart", "setting", name)
	}
	if len(toLoad) == 0 && len(retire) == 0 && len(settings) == 0 && sameOrder(e.gens, next) {
		e.log.Info("reload: no changes")
	}
	// Swap (publish waits until the old snapshot drains), then close.
	e.cfg = cfg
	e.gens = next
	e.publish()
	e.updateView()
	for _, g := range retire {
		if g.held() {
			// An accepted login or a background-update batch may still
			// call back into it: close it once they did.
			e.retiring.Add(1)
			go func() {
				defer e.retiring.Done()
				g.waitHolds(holdMax, e.closing)
				e.retire(g)
			}()
			continue
		}
		e.retire(g)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// sameOrder reports whether two generation lists are the same modules in
// the same order.
func sameOrder(a, b []*generation) bool {
	return slices.EqualFunc(a, b, func(x, y *generation) bool { return x == y })
}

// restartOnlyChanges names the settings that differ between the running
// config and a new one and that only a restart applies: the engine reads
// them once (storage, http_client) or luahost serve does (listen,
// admin_listen, access_log). Values are not named: they may be secrets.
func restartOnlyChanges(old, cur *Config) []string {
	var out []string
	check := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	check("server_name", old.ServerName != cur.ServerName)
	check("listen", old.Listen != cur.Listen)
	check("admin_listen", old.AdminListen != cur.AdminListen)
	check("access_log", old.AccessLog != cur.AccessLog)
	check("data_dir", old.DataDir != cur.DataDir)
	check("storage", old.Storage != cur.Storage)
	check("http_client", !slices.Equal(old.HTTPClient.IPRangeAllowlist, cur.HTTPClient.IPRangeAllowlist))
	return out
}

func inConfig(cfg *Config, name string) bool {
	for _, mc := range cfg.Modules {
		if mc.Name == name {
			return true
		}
	}
	return false
}

// files lists every file the running modules were loaded from (scripts
// and what they required), relative to the config's folder, sorted; a
// file watcher watches these and the config file.
func (e *Engine) files() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, g := range e.gens {
		for f := range g.sources {
			add(f)
		}
	}
	// What failed loads read too, so fixing a broken helper reloads.
	for _, files := range e.failedFiles {
		for f := range files {
			add(f)
		}
	}
	// Modules that failed to load are watched too, so fixing them reloads.
	for _, mc := range e.cfg.Modules {
		if !seen[mc.Module] {
			seen[mc.Module] = true
			out = append(out, mc.Module)
		}
	}
	sort.Strings(out)
	return out
}

// registered names what a generation registered, without repeats.
func (g *generation) registered() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range g.regs {
		id := r.Callback.ID()
		if r.LoginType != "" {
			id += "[" + r.LoginType + "]"
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
