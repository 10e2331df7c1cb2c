package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"
)

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	calls  []CallEvent
	reqs   []RequestEvent
	hosts  []HostCallEvent
	loads  []LoadEvent
	stores []StoreEvent
	https  []HTTPClientEvent
	drops  []string
	// nested counts host calls whose context carries a span started by
	// CallStart or RequestStart.
	nested  int
	started int
}

type spanKey struct{}

func (r *recorder) CallStart(ctx context.Context, ev CallEvent) context.Context {
	r.mu.Lock()
	r.started++
	r.mu.Unlock()
	return context.WithValue(ctx, spanKey{}, ev.Callback)
}

func (r *recorder) CallEnd(ctx context.Context, ev CallEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Value(spanKey{}) != ev.Callback {
		panic("CallEnd did not get CallStart's context")
	}
	r.calls = append(r.calls, ev)
}

func (r *recorder) RequestStart(ctx context.Context, ev RequestEvent) context.Context {
	return context.WithValue(ctx, spanKey{}, ev.Path)
}

func (r *recorder) RequestEnd(ctx context.Context, ev RequestEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, ev)
}

func (r *recorder) HostCallStart(ctx context.Context, ev HostCallEvent) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Value(spanKey{}) != nil {
		r.nested++
	}
	return ctx
}

func (r *recorder) HostCallEnd(ctx context.Context, ev HostCallEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts = append(r.hosts, ev)
}

func (r *recorder) ModuleLoad(ev LoadEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loads = append(r.loads, ev)
}

func (r *recorder) StoreOp(ev StoreEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stores = append(r.stores, ev)
}

func (r *recorder) HTTPClientRequest(ev HTTPClientEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.https = append(r.https, ev)
}

func (r *recorder) NotificationDropped(cb string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drops = append(r.drops, cb)
}

// lastCall returns the newest call event and forgets the others.
func (r *recorder) takeCalls() []CallEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func observed(t *testing.T, obs Observer, yaml string, files map[string]string) *Engine {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), cfg, Options{FS: mapFS(files), Logger: quiet, Observer: obs, AllowPartial: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestObserverSeesEveryCallWithItsOutcome(t *testing.T) {
	rec := &recorder{}
	e := observed(t, rec, `server_name: example.org
modules:
  - module: ok.lua
  - module: broken.lua
  - module: slow.lua
    timeout: 100ms
  - module: strict.lua
    on_error: deny
`, map[string]string{
		"ok.lua": reg("spam_checker", `check_event_for_spam = function(ev) return api.NOT_SPAM end`),
		"broken.lua": reg("third_party_rules", `check_event_allowed = function(ev, state) error("boom") end,
			check_visibility_can_be_modified = function() error("boom") end`),
		"slow.lua":   reg("third_party_rules", `check_can_shutdown_room = function() while true do end end`),
		"strict.lua": reg("spam_checker", `user_may_invite = function() error("boom") end, user_may_join_room = function() return api.NOT_SPAM end`),
	})
	bg := context.Background()
	cases := []struct {
		name string
		call func() error
		want []string // module callback outcome
	}{
		{"ok", func() error { _, err := e.CheckEventForSpam(bg, msg("@a:example.org", "hi")); return err },
			[]string{"ok spam_checker.check_event_for_spam ok"}},
		{"fail-closed callback refuses", func() error {
			_, err := e.CheckEventAllowed(bg, msg("@a:example.org", "hi"), StateMap{})
			return err
		}, []string{"broken third_party_rules.check_event_allowed refused"}},
		{"skip callback errors", func() error {
			_, err := e.CheckVisibilityCanBeModified(bg, "!r:example.org", StateMap{}, "public")
			return err
		}, []string{"broken third_party_rules.check_visibility_can_be_modified error"}},
		{"timeout", func() error { _, err := e.CheckCanShutdownRoom(bg, "@a:example.org", "!r:example.org"); return err },
			[]string{"slow third_party_rules.check_can_shutdown_room timeout"}},
		{"on_error deny refuses", func() error {
			_, err := e.UserMayInvite(bg, "@a:example.org", "@b:example.org", "!r:example.org")
			return err
		}, []string{"strict spam_checker.user_may_invite refused"}},
		{"ok with on_error deny", func() error {
			_, err := e.UserMayJoinRoom(bg, "@a:example.org", "!r:example.org", false)
			return err
		}, []string{"strict spam_checker.user_may_join_room ok"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range rec.takeCalls() {
				got = append(got, fmt.Sprintf("%s %s %s", ev.Module, ev.Callback, ev.Outcome))
				if ev.Duration <= 0 {
					t.Errorf("%s: no duration", ev.Callback)
				}
				if (ev.Outcome == OutcomeOK) != (ev.Err == nil) {
					t.Errorf("%s: outcome %s with error %v", ev.Callback, ev.Outcome, ev.Err)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("events %q, want %q", got, c.want)
			}
		})
	}
}

func TestObserverSeesWebRequestsHostCallsAndStore(t *testing.T) {
	rec := &recorder{}
	e := observed(t, rec, "server_name: example.org\nstorage: {backend: memory}\nmodules:\n  - module: web.lua\n", map[string]string{
		"web.lua": `local M = {}
function M.new(config, api)
  api.register_web_resource("/_synapse/client/count", function(req)
    return { json = { n = api.store.incr("hits") } }
  end)
  api.register_web_resource("/_synapse/client/fetch", function(req)
    local ok, err = pcall(api.http_client.get_json, "http://127.0.0.1:1/x")
    return { status = 502, json = { err = tostring(err) } }
  end)
  api.register_web_resource("/_synapse/client/crash", function(req) error("boom") end)
  api.register_web_resource("/_synapse/client/only", { GET = function(req) return "get" end })
end
return M`,
	})
	h := e.Handler()
	for _, r := range []struct{ method, path string }{
		{"GET", "/_synapse/client/count/user/@alice:example.org?access_token=x"},
		{"GET", "/_synapse/client/fetch"},
		{"GET", "/_synapse/client/crash"},
		{"BREW", "/_synapse/client/only"},
		{"GET", "/_synapse/client/nobody"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var reqs []string
	for _, ev := range rec.reqs {
		reqs = append(reqs, fmt.Sprintf("%s %s %s %d", ev.Module, ev.Method, ev.Path, ev.Status))
	}
	// The registered path, never the URL; an unknown method as OTHER; a
	// path no module registered is not reported.
	want := []string{
		"web GET /_synapse/client/count 200",
		"web GET /_synapse/client/fetch 502",
		"web GET /_synapse/client/crash 500",
		"web OTHER /_synapse/client/only 405",
	}
	if !slices.Equal(reqs, want) {
		t.Errorf("requests %q, want %q", reqs, want)
	}
	var hosts []string
	for _, ev := range rec.hosts {
		hosts = append(hosts, fmt.Sprintf("%s %s %v", ev.Module, ev.Function, ev.Err != nil))
	}
	if want := []string{"web store.incr false", "web http_client.get_json true"}; !slices.Equal(hosts, want) {
		t.Errorf("host calls %q, want %q", hosts, want)
	}
	if rec.nested != 2 {
		t.Errorf("%d of 2 host calls saw the request's context", rec.nested)
	}
	if len(rec.stores) != 1 || rec.stores[0] != (StoreEvent{Module: "web", Backend: "memory", Op: "incr", Duration: rec.stores[0].Duration}) {
		t.Errorf("store events %+v", rec.stores)
	}
	if len(rec.https) != 1 || rec.https[0].Outcome != HTTPRefused || rec.https[0].Method != "GET" || rec.https[0].Status != 0 {
		t.Errorf("http_client events %+v, want one refusal", rec.https)
	}
}

func TestObserverSeesLoadsAndGenerationsCountSuccessesOnly(t *testing.T) {
	rec := &recorder{}
	files := map[string]string{"spam.lua": spamModule("a", "M_FORBIDDEN")}
	fsys := mapFS(files)
	cfg, err := ParseConfig([]byte(oneModule), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), cfg, Options{FS: fsys, Logger: quiet, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	reload := func(yaml string, src string) {
		t.Helper()
		if src != "" {
			fsys["spam.lua"].Data = []byte(src)
		}
		cfg, err := ParseConfig([]byte(yaml), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		e.ReloadWith(context.Background(), cfg, nil)
	}
	reload(oneModule, spamModule("b", "M_FORBIDDEN"))
	reload(oneModule, "return {")                         // fails: generation 2 keeps serving
	reload(oneModule, "return {")                         // unchanged broken file: tried again, fails again
	reload(oneModule, spamModule("c", "M_FORBIDDEN"))     // generation 3, not 5
	reload("server_name: example.org\nmodules: []\n", "") // removed
	var got []string
	for _, ev := range rec.loads {
		got = append(got, fmt.Sprintf("%s %s gen=%d reload=%v", ev.Module, ev.Outcome, ev.Generation, ev.Reload))
	}
	want := []string{
		"spam ok gen=1 reload=false",
		"spam ok gen=2 reload=true",
		"spam error gen=2 reload=true",
		"spam error gen=2 reload=true",
		"spam ok gen=3 reload=true",
		"spam removed gen=0 reload=true",
	}
	if !slices.Equal(got, want) {
		t.Errorf("loads:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestObserverSeesDroppedNotifications(t *testing.T) {
	rec := &recorder{}
	e := observed(t, rec, "server_name: example.org\nmodules:\n  - module: a.lua\n", map[string]string{
		"a.lua": reg("third_party_rules", `on_new_event = function(ev, state)
			if ev.content.body == "slow" then api.sleep(0.5) end
		end`),
	})
	e.FireOnNewEvent(msg("@a:example.org", "slow"), StateMap{})
	time.Sleep(20 * time.Millisecond)
	for i := 0; i < NotificationQueueSize+10; i++ {
		e.FireOnNewEvent(msg("@a:example.org", "x"), StateMap{})
	}
	rec.mu.Lock()
	drops := len(rec.drops)
	first := ""
	if drops > 0 {
		first = rec.drops[0]
	}
	rec.mu.Unlock()
	if drops == 0 || uint64(drops) != e.Dropped() || first != "third_party_rules.on_new_event" {
		t.Errorf("%d drops reported (first %q), engine counted %d", drops, first, e.Dropped())
	}
	if st := e.Stats(); st.NotificationsDropped != e.Dropped() || st.NotificationQueue == 0 {
		t.Errorf("stats %+v", st)
	}
}

// The error an observer gets names the module and the line, with the
// config's secret values hidden.
func TestObserverErrorsAreRedacted(t *testing.T) {
	t.Setenv("OBSERVER_TEST_SECRET", "hunter2-very-secret")
	rec := &recorder{}
	e := observed(t, rec, `server_name: example.org
modules:
  - module: a.lua
    config: { token: "${OBSERVER_TEST_SECRET}" }
`, map[string]string{"a.lua": `local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev) error("bad token " .. config.token) end }
end
return M`})
	_, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "x"))
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "bad token [redacted]") {
		t.Errorf("returned error: %v", err)
	}
	var se *ScriptError
	if !errors.As(err, &se) || se.Line != 3 {
		t.Errorf("the redacted error still unwraps to the ScriptError: %#v", err)
	}
	calls := rec.takeCalls()
	if len(calls) != 1 || calls[0].Err == nil || strings.Contains(calls[0].Err.Error(), "hunter2") {
		t.Errorf("observer saw %+v", calls)
	}
}

// A nil observer and NopObserver change nothing a caller sees.
func TestNopObserver(t *testing.T) {
	e := observed(t, NopObserver{}, "server_name: example.org\nmodules:\n  - module: a.lua\n", map[string]string{
		"a.lua": spamModule("bad", "M_FORBIDDEN")})
	d, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "bad"))
	if err != nil || d.Errcode != "M_FORBIDDEN" {
		t.Errorf("%+v %v", d, err)
	}
	rr := httptest.NewRecorder()
	e.Handler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/_synapse/client/x", nil))
	if rr.Code != http.StatusNotFound {
		t.Errorf("status %d", rr.Code)
	}
}
