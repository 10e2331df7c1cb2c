package luatest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/internal/clock"
	"github.com/luahost/luahost/internal/testhooks"
	"github.com/luahost/luahost/luaapi"
)

// Start is where every test's fake clock begins: 2024-01-01T00:00:00Z.
var Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// loadSpec is what t.load asked for: a config file (and optionally some
// of its modules), or one module file with an inline config.
type loadSpec struct {
	config  string   // config file, relative to the test file
	modules []string // module names to keep; none: all
	// Inline form: file plus these settings.
	file        string
	inline      map[string]any // the module's config: value
	name        string
	serverName  string
	timeout     string
	initTimeout string
	onError     string
}

// testEnv is one test's world: the homeserver, clock, store, HTTP stubs
// and (once something needs it) the engine with the modules loaded.
type testEnv struct {
	fr    *fileRun
	load  *loadSpec
	clock *clock.Fake
	http  *httpStubs
	logs  *logBuffer

	cfg   *engine.Config // resolved on first use
	host  *memhost.Host
	store storage.Store
	eng   *engine.Engine
	// loadErr is the load failure, kept so every later call reports it.
	loadErr error
}

func newTestEnv(fr *fileRun, load *loadSpec) *testEnv {
	return &testEnv{fr: fr, load: load, clock: clock.NewFake(Start), http: &httpStubs{}, logs: &logBuffer{}}
}

// world resolves the config and makes the homeserver, once.
func (te *testEnv) world() (*memhost.Host, error) {
	if te.host != nil {
		return te.host, nil
	}
	if te.load == nil {
		return nil, errors.New("nothing to test: call t.load{config = \"luahost.yaml\"} (or t.load{file = \"module.lua\", config = {...}}) first")
	}
	cfg, err := te.load.resolve(te.fr.dir)
	if err != nil {
		return nil, err
	}
	te.cfg = cfg
	server := cfg.ServerName
	if server == "" {
		server = "example.org"
		cfg.ServerName = server
	}
	te.host = memhost.New(server)
	return te.host, nil
}

// engine starts the modules, once; a load failure is returned every time.
func (te *testEnv) engine() (*engine.Engine, error) {
	if te.eng != nil || te.loadErr != nil {
		return te.eng, te.loadErr
	}
	host, err := te.world()
	if err != nil {
		return nil, err
	}
	te.store = storage.NewMemory(te.clock.Now)
	ctx := testhooks.With(context.Background(), &testhooks.Hooks{Clock: te.clock, Transport: te.http})
	eng, err := engine.New(ctx, te.cfg, engine.Options{Host: host, Store: te.store,
		Logger: slog.New(te.logs), HostHonoursContext: true})
	if err != nil {
		var les engine.LoadErrors
		if errors.As(err, &les) && len(les) == 1 {
			err = les[0] // one module: its error says it all
		}
		te.loadErr = err
		return nil, err
	}
	te.eng = eng
	return eng, nil
}

func (te *testEnv) close() error {
	var err error
	if te.eng != nil {
		err = te.eng.Close()
	}
	if te.store != nil {
		te.store.Close()
	}
	return err
}

func (te *testEnv) logText() string { return te.logs.text() }

// resolve turns the spec into a config.
func (ls *loadSpec) resolve(dir string) (*engine.Config, error) {
	if ls.file != "" {
		return ls.inlineConfig(dir)
	}
	cfg, err := engine.LoadConfig(filepath.Join(dir, ls.config))
	if err != nil {
		return nil, err
	}
	if len(ls.modules) == 0 {
		return cfg, nil
	}
	var kept []engine.ModuleConfig
	var names []string
	for _, m := range cfg.Modules {
		names = append(names, m.Name)
	}
	for _, want := range ls.modules {
		found := false
		for _, m := range cfg.Modules {
			if m.Name == want {
				kept = append(kept, m)
				found = true
			}
		}
		if !found {
			hint := ""
			if s := luaapi.Suggest(want, names); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, fmt.Errorf("t.load: %s has no module named %q%s; its modules: %s", ls.config, want, hint, strings.Join(names, ", "))
		}
	}
	cfg.Modules = kept
	return cfg, nil
}

// inlineConfig is the config of t.load{file = ..., config = {...}}.
func (ls *loadSpec) inlineConfig(dir string) (*engine.Config, error) {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b strings.Builder
	server := ls.serverName
	if server == "" {
		server = "example.org"
	}
	fmt.Fprintf(&b, "server_name: %s\nmodules:\n  - module: %s\n", q(server), q(ls.file))
	for _, kv := range [][2]string{{"name", ls.name}, {"timeout", ls.timeout}, {"init_timeout", ls.initTimeout}, {"on_error", ls.onError}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "    %s: %s\n", kv[0], q(kv[1]))
		}
	}
	if ls.inline != nil {
		j, err := json.Marshal(ls.inline)
		if err != nil {
			return nil, fmt.Errorf("t.load: config: %w", err)
		}
		fmt.Fprintf(&b, "    config: %s\n", j)
	}
	cfg, err := engine.ParseConfig([]byte(b.String()), "t.load")
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	// Lines of the YAML made here would point at nothing the user wrote.
	for i := range cfg.Modules {
		cfg.Modules[i].Line, cfg.Modules[i].ConfigLine = 0, 0
	}
	return cfg, nil
}

// logBuffer is an slog.Handler that keeps the modules' log records of
// one test (INFO and above), for the failure report and t.logs().
type logBuffer struct {
	mu      sync.Mutex
	records []logRecord
	attrs   []slog.Attr
}

type logRecord struct {
	Level string
	Msg   string
	Attrs map[string]string
	keys  []string
}

func (lb *logBuffer) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (lb *logBuffer) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level.String(), Msg: r.Message, Attrs: map[string]string{}}
	add := func(a slog.Attr) bool {
		if _, dup := rec.Attrs[a.Key]; !dup {
			rec.keys = append(rec.keys, a.Key)
		}
		rec.Attrs[a.Key] = a.Value.String()
		return true
	}
	for _, a := range lb.attrs {
		add(a)
	}
	r.Attrs(add)
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.records = append(lb.records, rec)
	return nil
}

func (lb *logBuffer) WithAttrs(as []slog.Attr) slog.Handler {
	return &logChild{parent: lb, attrs: append(append([]slog.Attr(nil), lb.attrs...), as...)}
}

func (lb *logBuffer) WithGroup(string) slog.Handler { return lb }

// logChild is a logBuffer with attributes added (log.With).
type logChild struct {
	parent *logBuffer
	attrs  []slog.Attr
}

func (c *logChild) Enabled(ctx context.Context, l slog.Level) bool { return c.parent.Enabled(ctx, l) }
func (c *logChild) Handle(ctx context.Context, r slog.Record) error {
	r2 := r.Clone()
	r2.AddAttrs(c.attrs...)
	return c.parent.Handle(ctx, r2)
}
func (c *logChild) WithAttrs(as []slog.Attr) slog.Handler {
	return &logChild{parent: c.parent, attrs: append(append([]slog.Attr(nil), c.attrs...), as...)}
}
func (c *logChild) WithGroup(string) slog.Handler { return c }

func (lb *logBuffer) all() []logRecord {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return append([]logRecord(nil), lb.records...)
}

func (lb *logBuffer) text() string {
	var b strings.Builder
	for _, r := range lb.all() {
		fmt.Fprintf(&b, "log %s %s", r.Level, r.Msg)
		keys := append([]string(nil), r.keys...)
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, r.Attrs[k])
		}
		b.WriteString("\n")
	}
	return b.String()
}
