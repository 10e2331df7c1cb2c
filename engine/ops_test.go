package engine_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/storage"
)

// lockedBuffer is a log destination safe for the engine's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns what was logged since the last take.
func (b *lockedBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

func TestReadyNeedsEveryModuleAndTheStore(t *testing.T) {
	fsys := mapFS(map[string]string{"a.lua": spamModule("x", "M_FORBIDDEN"), "b.lua": "return {"})
	yaml := "server_name: example.org\nmodules:\n  - module: a.lua\n  - module: b.lua\n"
	cfg, err := ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st := &flakyStore{Store: mustMemory(t)}
	e, err := New(context.Background(), cfg, Options{FS: fsys, Logger: quiet, AllowPartial: true, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if err := e.Ready(ctx); err == nil || !strings.Contains(err.Error(), `module "b" is not loaded: module "b"`) {
		t.Errorf("a module that never loaded: Ready = %v", err)
	}
	// The fix is saved: ready.
	fsys["b.lua"].Data = []byte(spamModule("y", "M_FORBIDDEN"))
	if err := e.ReloadWith(ctx, e.Config(), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(ctx); err != nil {
		t.Errorf("after the fix: %v", err)
	}
	// A broken save of a serving module keeps it serving: still ready.
	fsys["b.lua"].Data = []byte("return {")
	if err := e.ReloadWith(ctx, e.Config(), nil); err == nil {
		t.Fatal("the broken reload should fail")
	}
	if err := e.Ready(ctx); err != nil {
		t.Errorf("the old version serves: %v", err)
	}
	// The store stops answering.
	st.down.Store(true)
	if err := e.Ready(ctx); err == nil || !strings.Contains(err.Error(), "storage (custom) does not answer: storage: flaky get") {
		t.Errorf("an unreachable store: Ready = %v", err)
	}
	st.down.Store(false)
	if err := e.Ready(ctx); err != nil {
		t.Errorf("the store is back: %v", err)
	}
	e.Close()
	if err := e.Ready(ctx); err == nil {
		t.Error("a closed engine is not ready")
	}
}

func mustMemory(t *testing.T) storage.Store {
	t.Helper()
	st, err := storage.Open(storage.Config{Backend: "memory"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Status and Ready answer while a reload is loading a module.
func TestStatusDoesNotWaitForAReload(t *testing.T) {
	fsys := mapFS(map[string]string{"a.lua": spamModule("x", "M_FORBIDDEN")})
	cfg, err := ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: a.lua\n    init_timeout: 1s\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), cfg, Options{FS: fsys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// The new version's constructor spins until its init_timeout.
	fsys["a.lua"].Data = []byte(`return { new = function() while true do end end }`)
	done := make(chan error)
	go func() { done <- e.ReloadWith(context.Background(), e.Config(), nil) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	st := e.Status()
	ready := e.Ready(context.Background())
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("Status and Ready waited %v for the reload", waited)
	}
	if len(st) != 1 || !st[0].Serving || st[0].Generation != 1 || ready != nil {
		t.Errorf("during the reload: %+v, ready %v", st, ready)
	}
	if err := <-done; err == nil {
		t.Error("the reload should time out")
	}
}

func TestReloadSaysWhatHappened(t *testing.T) {
	logs := &lockedBuffer{}
	fsys := mapFS(map[string]string{"spam.lua": spamModule("x", "M_FORBIDDEN")})
	cfg, err := ParseConfig([]byte(oneModule), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), cfg, Options{FS: fsys, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	reload := func(yaml string) string {
		t.Helper()
		cfg, err := ParseConfig([]byte(yaml), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		e.ReloadWith(context.Background(), cfg, nil)
		return logs.take()
	}
	logs.take()
	cases := []struct {
		name   string
		yaml   string
		src    string
		want   []string
		absent []string
	}{
		{"nothing changed", oneModule, "", []string{`msg="reload: no changes"`}, []string{"WARN"}},
		{"saved back unchanged", oneModule, spamModule("x", "M_FORBIDDEN"), []string{`msg="reload: no changes"`}, nil},
		{"module changed", oneModule, spamModule("y", "M_FORBIDDEN"), []string{`msg="module reloaded" module=spam generation=2`}, []string{"no changes"}},
		{"restart-only settings", "server_name: example.org\nlisten: 127.0.0.1:9999\nadmin_listen: 127.0.0.1:9090\nstorage: {backend: memory}\nhttp_client: {ip_range_allowlist: [10.0.0.0/8]}\nmodules:\n  - module: spam.lua\n", "",
			[]string{
				`level=WARN msg="reload: listen changed in the config; it takes effect only after a restart" setting=listen`,
				`setting=admin_listen`, `setting=storage`, `setting=http_client`,
			}, []string{"no changes", "setting=server_name", "setting=data_dir"}},
		{"server name", "server_name: other.org\nmodules:\n  - module: spam.lua\n", "",
			[]string{`setting=server_name`}, []string{"no changes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.src != "" {
				fsys["spam.lua"].Data = []byte(c.src)
			}
			got := reload(c.yaml)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("log has no %s:\n%s", w, got)
				}
			}
			for _, a := range c.absent {
				if strings.Contains(got, a) {
					t.Errorf("log has %s:\n%s", a, got)
				}
			}
		})
	}
}

func TestStatusShowsFilesAndInstances(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: mod/a.lua\n    instances: 2\n", map[string]string{
		"mod/a.lua":       `local h = require("helper") return { new = function(c, api) api.register_web_resource("/_synapse/client/a", function() return h.x end) end }`,
		"mod/helper.lua":  `return { x = "x" }`,
		"mod/unused.lua":  `return {}`,
		"mod/ignored.txt": "",
	})
	st := e.Status()
	if len(st) != 1 || st[0].Instances != 2 || strings.Join(st[0].Files, ",") != "mod/a.lua,mod/helper.lua" ||
		strings.Join(st[0].Paths, ",") != "/_synapse/client/a" || st[0].Generation != 1 {
		t.Errorf("status %+v", st)
	}
}
