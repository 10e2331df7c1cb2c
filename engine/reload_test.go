package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	. "github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/internal/runtime"

	"github.com/luahost/luahost/cmd/luahost/memhost"
)

// reloadRig is an engine over an in-memory file system the test edits.
type reloadRig struct {
	t    *testing.T
	fsys fstest.MapFS
	e    *Engine
	host *memhost.Host
}

func newReloadRig(t *testing.T, yaml string, files map[string]string) *reloadRig {
	t.Helper()
	r := &reloadRig{t: t, fsys: mapFS(files), host: memhost.New("example.org")}
	cfg, err := ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r.e, err = New(context.Background(), cfg, Options{FS: r.fsys, Logger: quiet, Host: r.host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.e.Close() })
	return r
}

// write replaces a file (the engine reads through the same map).
func (r *reloadRig) write(name, src string) {
	r.fsys[name] = &fstest.MapFile{Data: []byte(src)}
}

func (r *reloadRig) reload(yaml string) error {
	r.t.Helper()
	cfg, err := ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		r.t.Fatal(err)
	}
	return r.e.ReloadWith(context.Background(), cfg, nil)
}

func (r *reloadRig) verdict(body string) string {
	r.t.Helper()
	d, err := r.e.CheckEventForSpam(context.Background(), msg("@a:example.org", body))
	if err != nil {
		r.t.Fatalf("check: %v", err)
	}
	if d.Allowed() {
		return "allow"
	}
	return d.Errcode
}

func (r *reloadRig) status(name string) ModuleStatus {
	for _, s := range r.e.Status() {
		if s.Name == name {
			return s
		}
	}
	r.t.Fatalf("no status for %s", name)
	return ModuleStatus{}
}

// spamModule rejects bodies equal to word with errcode.
func spamModule(word, errcode string) string {
	return fmt.Sprintf(`return { new = function(c, api) api.register_spam_checker_callbacks{
	check_event_for_spam = function(ev)
		if ev.content.body == %q then return %q end
		return api.NOT_SPAM
	end } end }`, word, errcode)
}

const oneModule = "server_name: example.org\nmodules:\n  - module: spam.lua\n"

func TestReloadServesTheNewVersion(t *testing.T) {
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": spamModule("buy", "M_FORBIDDEN")})
	if v := r.verdict("buy"); v != "M_FORBIDDEN" {
		t.Fatalf("v1: %s", v)
	}
	gen1 := r.status("spam").Generation
	r.write("spam.lua", spamModule("sell", "M_LIMIT_EXCEEDED"))
	if err := r.reload(oneModule); err != nil {
		t.Fatal(err)
	}
	if v := r.verdict("buy"); v != "allow" {
		t.Errorf("v2 should allow buy, got %s", v)
	}
	if v := r.verdict("sell"); v != "M_LIMIT_EXCEEDED" {
		t.Errorf("v2 should reject sell, got %s", v)
	}
	if st := r.status("spam"); st.Generation <= gen1 || st.LastError != nil {
		t.Errorf("status after reload: %+v (was generation %d)", st, gen1)
	}
}

func TestABrokenReloadKeepsTheOldVersionServing(t *testing.T) {
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": spamModule("buy", "M_FORBIDDEN")})
	gen1 := r.status("spam").Generation
	for _, broken := range []struct{ src, want string }{
		{"return { new = function(c, api)\n  if then\nend }", "spam.lua:2:"},
		{"return { new = function(c, api)\n  local x = nil\n  x.boom()\nend }", `module "spam" (spam.lua:3): new: attempt to`},
		{"return { new = function(c, api) while true do end end }", "timed out"},
	} {
		r.write("spam.lua", broken.src)
		cfgYAML := oneModule + "    init_timeout: 100ms\n"
		err := r.reload(cfgYAML)
		if err == nil || !strings.Contains(err.Error(), broken.want) {
			t.Errorf("reload of a broken version: got %v, want it to contain %q", err, broken.want)
		}
		if v := r.verdict("buy"); v != "M_FORBIDDEN" {
			t.Errorf("the old version should keep serving, got %s", v)
		}
		st := r.status("spam")
		if st.Generation != gen1 || !st.Serving || st.LastError == nil || !strings.Contains(st.LastError.Error(), broken.want) {
			t.Errorf("status should show the old generation and the error: %+v", st)
		}
	}
	r.write("spam.lua", spamModule("sell", "M_FORBIDDEN"))
	if err := r.reload(oneModule); err != nil {
		t.Fatal(err)
	}
	if st := r.status("spam"); st.LastError != nil || st.Generation == gen1 {
		t.Errorf("a good reload clears the error: %+v", st)
	}
}

func TestReloadLeavesUnchangedModulesAlone(t *testing.T) {
	yaml := "server_name: example.org\nmodules:\n  - module: a.lua\n  - module: b.lua\n    config: {n: 1}\n"
	r := newReloadRig(t, yaml, map[string]string{
		"a.lua": spamModule("a", "M_FORBIDDEN"), "b.lua": spamModule("b", "M_FORBIDDEN"), "lib.lua": "return 1",
	})
	a1, b1 := r.status("a").Generation, r.status("b").Generation
	// Nothing changed: nothing reloads.
	if err := r.reload(yaml); err != nil {
		t.Fatal(err)
	}
	if r.status("a").Generation != a1 || r.status("b").Generation != b1 {
		t.Errorf("an unchanged module was reloaded")
	}
	// b's config changes: only b reloads.
	yaml2 := strings.Replace(yaml, "{n: 1}", "{n: 2}", 1)
	if err := r.reload(yaml2); err != nil {
		t.Fatal(err)
	}
	if r.status("a").Generation != a1 || r.status("b").Generation == b1 {
		t.Errorf("want only b reloaded: a %d->%d, b %d->%d", a1, r.status("a").Generation, b1, r.status("b").Generation)
	}
	// A file a requires changes: a reloads.
	r.write("a.lua", `local lib = require("lib")`+"\n"+spamModule("a", "M_FORBIDDEN"))
	if err := r.reload(yaml2); err != nil {
		t.Fatal(err)
	}
	a2 := r.status("a").Generation
	r.write("lib.lua", "return 2")
	if err := r.reload(yaml2); err != nil {
		t.Fatal(err)
	}
	if r.status("a").Generation == a2 {
		t.Errorf("a required file changed but the module was not reloaded")
	}
}

func TestReloadAddsRemovesAndReordersModules(t *testing.T) {
	r := newReloadRig(t, "server_name: example.org\nmodules:\n  - module: a.lua\n", map[string]string{
		"a.lua": spamModule("x", "M_FORBIDDEN"), "b.lua": spamModule("x", "M_LIMIT_EXCEEDED"),
	})
	if v := r.verdict("x"); v != "M_FORBIDDEN" {
		t.Fatal(v)
	}
	// Add b before a: the first rejection now comes from b.
	if err := r.reload("server_name: example.org\nmodules:\n  - module: b.lua\n  - module: a.lua\n"); err != nil {
		t.Fatal(err)
	}
	if v := r.verdict("x"); v != "M_LIMIT_EXCEEDED" {
		t.Errorf("after reordering, b answers first: got %s", v)
	}
	// Remove b.
	if err := r.reload("server_name: example.org\nmodules:\n  - module: a.lua\n"); err != nil {
		t.Fatal(err)
	}
	if v := r.verdict("x"); v != "M_FORBIDDEN" {
		t.Errorf("after removing b: got %s", v)
	}
	if n := len(r.e.Status()); n != 1 {
		t.Errorf("%d modules running, want 1", n)
	}
}

func TestRetiredGenerationGetsOnCloseAndItsTimersStop(t *testing.T) {
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": `local n = 0
return { new = function(c, api)
	api.looping_background_call(function() n = n + 1 end, 10)
	api.on_close(function()
		api.set_displayname("@closer:example.org", "closed after " .. (n > 0 and "ticks" or "nothing"))
	end)
	api.register_spam_checker_callbacks{ check_event_for_spam = function() return api.NOT_SPAM end }
end }`})
	if _, err := r.host.CreateUser("@closer:example.org", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the loop tick
	if err := r.e.ReloadModule(context.Background(), "spam"); err != nil {
		t.Fatal(err)
	}
	p, err := r.host.Profile(context.Background(), "@closer:example.org")
	if err != nil || p.DisplayName != "closed after ticks" {
		t.Errorf("on_close of the old generation did not run: %+v %v", p, err)
	}
}

// Requests that hammer a module while it reloads ten times in a row all
// succeed: no 5xx, no failed call.
func TestReloadUnderLoadLosesNothing(t *testing.T) {
	web := func(version int) string {
		return fmt.Sprintf(`return { new = function(c, api)
	api.register_spam_checker_callbacks{ check_event_for_spam = function(ev) return api.NOT_SPAM end }
	api.register_web_resource("/_synapse/client/v", function(req)
		api.sleep(0.001) -- parked on a host call while the reload swaps
		return { json = { version = %d } }
	end)
end }`, version)
	}
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": web(0)})
	srv := httptest.NewServer(r.e.Handler())
	defer srv.Close()

	var stop atomic.Bool
	var failures, requests atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for !stop.Load() {
				requests.Add(1)
				var err error
				if g%2 == 0 {
					var resp *http.Response
					resp, err = http.Get(srv.URL + "/_synapse/client/v")
					if err == nil {
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
						}
					}
				} else {
					_, err = r.e.CheckEventForSpam(context.Background(), msg("@a:example.org", "x"))
				}
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}
		}(g)
	}
	for i := 1; i <= 10; i++ {
		time.Sleep(10 * time.Millisecond)
		r.write("spam.lua", web(i))
		if err := r.reload(oneModule); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", n, requests.Load(), firstFailure.Load())
	}
	resp, err := http.Get(srv.URL + "/_synapse/client/v")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"version":10`) {
		t.Errorf("after ten reloads the last version should serve, got %s", body)
	}
}

// A thousand reloads leave no goroutine and no Lua state behind.
func TestThousandReloadsLeakNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 reloads take a few seconds; skipped with -short")
	}
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": spamModule("x", "M_FORBIDDEN")})
	ctx := context.Background()
	settle := func() int {
		goruntime.GC()
		time.Sleep(10 * time.Millisecond)
		return goruntime.NumGoroutine()
	}
	before := settle()
	statesBefore := runtime.Live()
	for i := 0; i < 1000; i++ {
		if err := r.e.ReloadModule(ctx, "spam"); err != nil {
			t.Fatal(err)
		}
	}
	if v := r.verdict("x"); v != "M_FORBIDDEN" {
		t.Fatalf("after 1,000 reloads: %s", v)
	}
	if after := settle(); after > before+2 {
		t.Errorf("goroutines grew from %d to %d over 1,000 reloads", before, after)
	}
	if n := runtime.Live(); n != statesBefore {
		t.Errorf("live module runtimes grew from %d to %d over 1,000 reloads", statesBefore, n)
	}
}

func TestReloadOfAModuleThatNeverLoaded(t *testing.T) {
	r := &reloadRig{t: t, fsys: mapFS(map[string]string{"spam.lua": "syntax error here"}), host: memhost.New("example.org")}
	cfg, _ := ParseConfig([]byte(oneModule), "test.yaml")
	var err error
	if _, err = New(context.Background(), cfg, Options{FS: r.fsys, Logger: quiet, Host: r.host}); err == nil {
		t.Fatal("New succeeded with a broken module; want the load error")
	}
	r.e, err = New(context.Background(), cfg, Options{FS: r.fsys, Logger: quiet, Host: r.host, AllowPartial: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.e.Close() })
	var le *LoadError
	if st := r.status("spam"); st.Serving || !errors.As(st.LastError, &le) {
		t.Errorf("status of a module that never loaded: %+v", st)
	}
	r.write("spam.lua", spamModule("x", "M_FORBIDDEN"))
	if err := r.reload(oneModule); err != nil {
		t.Fatal(err)
	}
	if v := r.verdict("x"); v != "M_FORBIDDEN" {
		t.Errorf("the fixed module should serve: %s", v)
	}
}

// lockedFS is an in-memory file system a test may edit while the engine
// reads it.
type lockedFS struct {
	mu    sync.RWMutex
	files fstest.MapFS
}

func (l *lockedFS) Open(name string) (fs.File, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f, ok := l.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return fstest.MapFS{name: &fstest.MapFile{Data: append([]byte(nil), f.Data...)}}.Open(name)
}

func (l *lockedFS) write(name, src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.files[name] = &fstest.MapFile{Data: []byte(src)}
}

func TestASaveDuringAReloadIsNotLost(t *testing.T) {
	version := func(v int) string {
		return fmt.Sprintf(`return { new = function(c, api)
	api.sleep(0.2) -- a slow constructor: the admin saves again meanwhile
	api.register_spam_checker_callbacks{ check_event_for_spam = function() return "M_V%d" end }
end }`, v)
	}
	lfs := &lockedFS{files: fstest.MapFS{"spam.lua": {Data: []byte(version(1))}}}
	cfg, _ := ParseConfig([]byte(oneModule), "test.yaml")
	e, err := New(bg, cfg, Options{FS: lfs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	lfs.write("spam.lua", version(2))
	go func() {
		time.Sleep(50 * time.Millisecond) // during v2's constructor
		lfs.write("spam.lua", version(3))
	}()
	if err := e.ReloadWith(bg, cfg, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.ReloadWith(bg, cfg, nil); err != nil { // the watcher's next reload
		t.Fatal(err)
	}
	d, _ := e.CheckEventForSpam(bg, msg("@a:example.org", "x"))
	if d.Errcode != "M_V3" {
		t.Errorf("the save made during the reload was lost: serving %s", d.Errcode)
	}
}

func TestReloadWatchesWhatAFailedLoadRead(t *testing.T) {
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": spamModule("x", "M_FORBIDDEN")})
	r.write("spam.lua", `local h = require("helper")`+"\n"+spamModule("x", "M_FORBIDDEN"))
	r.write("helper.lua", "syntax error here")
	if err := r.reload(oneModule); err == nil {
		t.Fatal("want the broken helper to fail the reload")
	}
	if files := strings.Join(r.e.Files(), ","); !strings.Contains(files, "helper.lua") {
		t.Errorf("the broken helper must be watched so fixing it reloads: %s", files)
	}
	r.write("helper.lua", "return {}")
	if err := r.reload(oneModule); err != nil {
		t.Errorf("fixing the helper reloads: %v", err)
	}
}

func TestRequireInACallbackDoesNotChurnReloads(t *testing.T) {
	r := newReloadRig(t, oneModule, map[string]string{
		"spam.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function()
			return require("late").verdict end } end }`,
		"late.lua": `return { verdict = "NOT_SPAM" }`,
	})
	if v := r.verdict("x"); v != "allow" {
		t.Fatal(v)
	}
	gen := r.status("spam").Generation
	if err := r.reload(oneModule); err != nil {
		t.Fatal(err)
	}
	if r.status("spam").Generation != gen {
		t.Error("a require made by a callback after loading made the module reload")
	}
}

func TestConfigEditsThatMoveAModuleDoNotReloadIt(t *testing.T) {
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": spamModule("x", "M_FORBIDDEN")})
	gen := r.status("spam").Generation
	if err := r.reload("# a comment\n\n" + oneModule); err != nil {
		t.Fatal(err)
	}
	if r.status("spam").Generation != gen {
		t.Error("moving a module's entry down the file reloaded it")
	}
}

func TestAConstructorUsingTheStoreCanReload(t *testing.T) {
	yaml := "server_name: example.org\nstorage: {backend: memory}\nmodules:\n  - module: spam.lua\n"
	r := newReloadRig(t, yaml, map[string]string{"spam.lua": `return { new = function(c, api)
		local n = api.store.incr("loads")
		api.register_spam_checker_callbacks{ check_event_for_spam = function() return api.NOT_SPAM end }
	end }`})
	done := make(chan error, 1)
	go func() { done <- r.e.ReloadModule(bg, "spam") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a reload whose constructor uses api.store hangs")
	}
}
