package engine

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/luaapi"
)

// Observer receives the engine's events, for metrics and tracing: pass one
// in Options.Observer. Package engine/prommetrics turns them into
// Prometheus metrics; docs/embedding.md sketches an OpenTelemetry tracer.
//
// The engine calls an Observer synchronously on the goroutine doing the
// work, from many goroutines at once: every method must be safe for
// concurrent use and quick (count, record, never block on I/O). Embed
// NopObserver to implement only the events you need.
//
// Start methods return the context the work then runs under: return ctx
// itself to keep nothing, or a context derived from it (a tracer's span);
// the matching End method receives that context. A callback's or web
// request's context reaches the host calls it makes, so spans nest.
//
// Every label-like field (module, callback, path, function, backend, op)
// comes from a small set fixed by the config and the code: module names,
// catalogue callbacks, registered web paths (never the requested URL),
// host function names. Errors are the engine's, with secret values of the
// config redacted.
type Observer interface {
	// CallStart and CallEnd surround one module's answer to a callback
	// (and a timer's background call).
	CallStart(ctx context.Context, ev CallEvent) context.Context
	CallEnd(ctx context.Context, ev CallEvent)
	// RequestStart and RequestEnd surround a web request a module's
	// handler serves (requests no module registered are not reported).
	RequestStart(ctx context.Context, ev RequestEvent) context.Context
	RequestEnd(ctx context.Context, ev RequestEvent)
	// HostCallStart and HostCallEnd surround the Go side of a script's
	// host call (api.get_profile_for_user, api.store.get, ...).
	HostCallStart(ctx context.Context, ev HostCallEvent) context.Context
	HostCallEnd(ctx context.Context, ev HostCallEvent)
	// ModuleLoad reports each module load: at New and at every reload.
	ModuleLoad(ev LoadEvent)
	// StoreOp reports one api.store operation.
	StoreOp(ev StoreEvent)
	// HTTPClientRequest reports one api.http_client request.
	HTTPClientRequest(ev HTTPClientEvent)
	// NotificationDropped reports a notification the full queue dropped
	// (callback is "category.name").
	NotificationDropped(callback string)
}

// NopObserver implements Observer and does nothing: embed it in an
// observer to implement only some events.
type NopObserver struct{}

func (NopObserver) CallStart(ctx context.Context, _ CallEvent) context.Context       { return ctx }
func (NopObserver) CallEnd(context.Context, CallEvent)                               {}
func (NopObserver) RequestStart(ctx context.Context, _ RequestEvent) context.Context { return ctx }
func (NopObserver) RequestEnd(context.Context, RequestEvent)                         {}
func (NopObserver) HostCallStart(ctx context.Context, _ HostCallEvent) context.Context {
	return ctx
}
func (NopObserver) HostCallEnd(context.Context, HostCallEvent) {}
func (NopObserver) ModuleLoad(LoadEvent)                       {}
func (NopObserver) StoreOp(StoreEvent)                         {}
func (NopObserver) HTTPClientRequest(HTTPClientEvent)          {}
func (NopObserver) NotificationDropped(string)                 {}

// Outcome is how a callback call ended.
type Outcome uint8

const (
	// OutcomeOK: the module answered.
	OutcomeOK Outcome = iota
	// OutcomeError: the script raised an error or hit a limit, and the
	// callback's error policy skipped the module or failed the operation.
	OutcomeError
	// OutcomeTimeout: the call overran the module's timeout.
	OutcomeTimeout
	// OutcomeRefused: the script raised an error and the module's
	// on_error: deny (or the callback's fail-closed rule, as for
	// check_event_allowed) turned it into a refusal.
	OutcomeRefused
)

// String is "ok", "error", "timeout" or "refused".
func (o Outcome) String() string {
	switch o {
	case OutcomeOK:
		return "ok"
	case OutcomeError:
		return "error"
	case OutcomeTimeout:
		return "timeout"
	case OutcomeRefused:
		return "refused"
	}
	return "unknown"
}

// CallEvent is one module's callback call. Duration, Outcome and Err are
// set for CallEnd only.
type CallEvent struct {
	Module   string
	Callback string // "spam_checker.check_event_for_spam", "api.looping_background_call", ...
	Duration time.Duration
	Outcome  Outcome
	Err      error
}

// RequestEvent is one web request a module serves. Status and Duration
// are set for RequestEnd only; Status 499 means the client went away
// before the answer.
type RequestEvent struct {
	Module   string
	Path     string // the path the module registered, never the requested URL
	Method   string // GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, or OTHER
	Status   int
	Duration time.Duration
	Err      error // the handler's failure, if it failed
}

// HostCallEvent is the Go side of one host call. Duration and Err are set
// for HostCallEnd only.
type HostCallEvent struct {
	Module   string
	Function string // "get_profile_for_user", "store.get", "http_client.get_json", ...
	Duration time.Duration
	Err      error
}

// LoadOutcome is how a module load ended.
type LoadOutcome uint8

const (
	// LoadOK: a new generation of the module serves.
	LoadOK LoadOutcome = iota
	// LoadFailed: the load failed; the previous generation, if any,
	// keeps serving.
	LoadFailed
	// LoadRemoved: the module left the config and was retired.
	LoadRemoved
)

// String is "ok", "error" or "removed".
func (o LoadOutcome) String() string {
	switch o {
	case LoadOK:
		return "ok"
	case LoadFailed:
		return "error"
	case LoadRemoved:
		return "removed"
	}
	return "unknown"
}

// LoadEvent is one module load, or a reload that could not read the
// config file (Module "").
type LoadEvent struct {
	Module  string
	Outcome LoadOutcome
	// Generation is the module's serving generation after the event
	// (0 when none serves); it counts successful loads only.
	Generation int
	// Reload is false for the loads of New.
	Reload bool
	Err    error
	At     time.Time
}

// StoreEvent is one api.store operation.
type StoreEvent struct {
	Module   string
	Backend  string // bolt, memory, redis, or "custom" for Options.Store
	Op       string // get, set, delete, incr, list
	Duration time.Duration
	Err      error
}

// HTTPOutcome is how an api.http_client request ended.
type HTTPOutcome uint8

const (
	// HTTPOK: a response arrived (whatever its status).
	HTTPOK HTTPOutcome = iota
	// HTTPRefused: the address is not public and not allowlisted
	// (http_client.ip_range_allowlist): nothing was sent.
	HTTPRefused
	// HTTPTimeout: the call's deadline passed first.
	HTTPTimeout
	// HTTPError: any other failure (DNS, connection, TLS, a body too
	// large, too many redirects).
	HTTPError
)

// String is "ok", "refused", "timeout" or "error".
func (o HTTPOutcome) String() string {
	switch o {
	case HTTPOK:
		return "ok"
	case HTTPRefused:
		return "refused"
	case HTTPTimeout:
		return "timeout"
	case HTTPError:
		return "error"
	}
	return "unknown"
}

// HTTPClientEvent is one api.http_client request. The URL is left out on
// purpose: it may carry user data and tokens.
type HTTPClientEvent struct {
	Module   string
	Method   string // as in RequestEvent
	Status   int    // the response's status, 0 without a response
	Outcome  HTTPOutcome
	Duration time.Duration
	Err      error
}

// callOutcome classifies a call's error; refuses says the caller's error
// policy turns an error into a refusal. A timeout is reported as one
// whatever the policy: it is the signal an admin acts on.
func callOutcome(err error, refuses bool) Outcome {
	if err == nil {
		return OutcomeOK
	}
	var se *ScriptError
	if errors.As(err, &se) && se.Timeout {
		return OutcomeTimeout
	}
	if refuses {
		return OutcomeRefused
	}
	return OutcomeError
}

// methodLabel keeps request methods to a fixed set: a client chooses the
// method, and every distinct value would be a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// callbackIDs are the catalogue's "category.name" strings, made once:
// Callback.ID builds a new string on every call.
var callbackIDs = func() map[*luaapi.Callback]string {
	m := map[*luaapi.Callback]string{}
	for _, cat := range luaapi.Catalogue {
		for _, cb := range cat.Callbacks {
			m[cb] = cb.ID()
		}
	}
	return m
}()

// run runs c on instance inst of g (0: whichever is idle).
func (g *generation) run(ctx context.Context, inst int, c runtime.Call) error {
	if inst == 0 {
		return g.invoke(ctx, c)
	}
	return g.invokeOn(inst, ctx, c)
}

// call runs one module's answer to cb, telling the observer; refuses
// says the caller's error policy turns an error into a refusal. Without
// an observer it costs one nil check.
func (e *Engine) call(ctx context.Context, g *generation, inst int, cb *luaapi.Callback, refuses bool, c runtime.Call) error {
	if e.obs == nil {
		return g.run(ctx, inst, c)
	}
	return e.observeCall(ctx, g, inst, callbackIDs[cb], refuses, c)
}

// callNamed is call for a function that is no catalogue callback (the
// second return of a callback, a timer); a failure is never a refusal.
func (e *Engine) callNamed(ctx context.Context, g *generation, inst int, name string, c runtime.Call) error {
	if e.obs == nil {
		return e.redactErr(g.run(ctx, inst, c))
	}
	return e.redactErr(e.observeCall(ctx, g, inst, name, false, c))
}

func (e *Engine) observeCall(ctx context.Context, g *generation, inst int, callback string, refuses bool, c runtime.Call) error {
	return e.observe(ctx, g.cfg.Name, callback, refuses, func(ctx context.Context) error { return g.run(ctx, inst, c) })
}

// observe runs one call under CallStart and CallEnd.
func (e *Engine) observe(ctx context.Context, module, callback string, refuses bool, run func(context.Context) error) error {
	ev := CallEvent{Module: module, Callback: callback}
	octx := e.obs.CallStart(ctx, ev)
	start := time.Now()
	err := run(octx)
	ev.Duration = time.Since(start)
	ev.Outcome = callOutcome(err, refuses)
	ev.Err = e.redactErr(err)
	e.obs.CallEnd(octx, ev)
	return err
}
