// Package prommetrics turns an engine's events into Prometheus metrics
// (github.com/prometheus/client_golang). It is a package of its own so that
// an embedder who does not want client_golang does not link it:
//
//	m, err := prommetrics.New(registry)
//	eng, err := engine.New(ctx, cfg, engine.Options{Observer: m, ...})
//	m.Attach(eng) // the gauges read from the engine
//	http.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
//
// docs/operations.md lists every metric; a test keeps that table in step
// with what New registers. Labels come from the config and the code only
// (module names, catalogue callbacks, registered web paths, host
// function names, store backends), never from requests, so the number of
// series stays bounded.
package prommetrics

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/luahost/luahost/engine"
)

// durationBuckets (seconds) span a quick Lua callback (~10 µs) to the
// longest sensible timeout.
var durationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics is an engine.Observer that counts into Prometheus metrics. Safe
// for concurrent use.
type Metrics struct {
	eng atomic.Pointer[engine.Engine]

	callCalls    *prometheus.CounterVec
	callErrors   *prometheus.CounterVec
	callDuration *prometheus.HistogramVec

	webRequests *prometheus.CounterVec
	webDuration *prometheus.HistogramVec

	hostCalls    *prometheus.CounterVec
	hostErrors   *prometheus.CounterVec
	hostDuration *prometheus.HistogramVec

	reloads      *prometheus.CounterVec
	generation   *prometheus.GaugeVec
	loadedAt     *prometheus.GaugeVec
	lastReloadAt prometheus.Gauge

	storeOps    *prometheus.CounterVec
	storeErrors *prometheus.CounterVec

	httpRequests *prometheus.CounterVec
	httpErrors   *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	dropped *prometheus.CounterVec

	// series caches the per-(module, callback) children: a vector's
	// WithLabelValues hashes its labels on every call.
	mu     sync.RWMutex
	series map[callKey]*callSeries
}

type callKey struct{ module, callback string }

type callSeries struct {
	calls    prometheus.Counter
	duration prometheus.Observer
}

// New makes the metrics and registers them with reg
// (prometheus.DefaultRegisterer when nil). Pass the result as
// engine.Options.Observer, then Attach the engine.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: durationBuckets}, labels)
	}
	m := &Metrics{
		series: map[callKey]*callSeries{},

		callCalls: counter("luahost_callback_calls_total",
			"Calls of a module's callback (timers' background calls included), whatever their outcome.", "module", "callback"),
		callErrors: counter("luahost_callback_errors_total",
			"Callback calls that failed, by kind: error (the script raised or hit a limit), timeout (it overran the module's timeout), refused (its error refused the action: on_error: deny or a fail-closed callback).",
			"module", "callback", "kind"),
		callDuration: histogram("luahost_callback_duration_seconds",
			"How long a module's callback took.", "module", "callback"),

		webRequests: counter("luahost_web_requests_total",
			"Web requests a module's handler answered, by the path it registered and the status sent (499: the client went away).",
			"module", "path", "method", "status"),
		webDuration: histogram("luahost_web_request_duration_seconds",
			"How long a module's web handler took to answer.", "module", "path"),

		hostCalls: counter("luahost_host_calls_total",
			"Host calls scripts made (api.get_profile_for_user, api.store.get, api.http_client.get_json, ...).", "module", "function"),
		hostErrors: counter("luahost_host_call_errors_total",
			"Host calls that returned an error to the script.", "module", "function"),
		hostDuration: histogram("luahost_host_call_duration_seconds",
			"How long the Go side of a host call took.", "function"),

		reloads: counter("luahost_reloads_total",
			"Module reloads after start-up, by outcome: ok, error (the previous version keeps serving; module=\"\" when the config file itself had errors), removed.",
			"module", "outcome"),
		generation: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "luahost_module_generation",
			Help: "The serving generation of each module: its count of successful loads."}, []string{"module"}),
		loadedAt: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "luahost_module_loaded_timestamp_seconds",
			Help: "When the serving generation of each module loaded (Unix time)."}, []string{"module"}),
		lastReloadAt: prometheus.NewGauge(prometheus.GaugeOpts{Name: "luahost_last_reload_timestamp_seconds",
			Help: "When the last reload ran, whatever its outcome (Unix time); 0 before the first."}),

		storeOps: counter("luahost_store_operations_total",
			"api.store operations, by backend and operation (get, set, delete, incr, list).", "backend", "op"),
		storeErrors: counter("luahost_store_errors_total",
			"api.store operations that failed.", "backend", "op"),

		httpRequests: counter("luahost_http_client_requests_total",
			"Requests scripts made with api.http_client, whatever their outcome.", "module"),
		httpErrors: counter("luahost_http_client_errors_total",
			"api.http_client requests that got no response, by kind: refused (the address is not public and not in http_client.ip_range_allowlist; nothing was sent), timeout, error.",
			"module", "kind"),
		httpDuration: histogram("luahost_http_client_request_duration_seconds",
			"How long api.http_client requests took.", "module"),

		dropped: counter("luahost_notifications_dropped_total",
			"Notifications dropped because the notification queue was full.", "callback"),
	}
	collectors := []prometheus.Collector{
		m.callCalls, m.callErrors, m.callDuration,
		m.webRequests, m.webDuration,
		m.hostCalls, m.hostErrors, m.hostDuration,
		m.reloads, m.generation, m.loadedAt, m.lastReloadAt,
		m.storeOps, m.storeErrors,
		m.httpRequests, m.httpErrors, m.httpDuration,
		m.dropped,
		statsCollector{m},
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Attach makes the gauges read e: its notification queue. The process's
// gauges (Lua states, calls in flight, parked calls, timers) need no
// engine. Attaching another engine replaces the first.
func (m *Metrics) Attach(e *engine.Engine) { m.eng.Store(e) }

var _ engine.Observer = (*Metrics)(nil)

// CallStart implements engine.Observer.
func (m *Metrics) CallStart(ctx context.Context, _ engine.CallEvent) context.Context { return ctx }

// CallEnd implements engine.Observer.
func (m *Metrics) CallEnd(_ context.Context, ev engine.CallEvent) {
	s := m.callSeries(ev.Module, ev.Callback)
	s.calls.Inc()
	s.duration.Observe(ev.Duration.Seconds())
	if ev.Outcome != engine.OutcomeOK {
		m.callErrors.WithLabelValues(ev.Module, ev.Callback, ev.Outcome.String()).Inc()
	}
}

func (m *Metrics) callSeries(module, callback string) *callSeries {
	k := callKey{module, callback}
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.series[k]; s == nil {
		s = &callSeries{calls: m.callCalls.WithLabelValues(module, callback),
			duration: m.callDuration.WithLabelValues(module, callback)}
		m.series[k] = s
	}
	return s
}

// RequestStart implements engine.Observer.
func (m *Metrics) RequestStart(ctx context.Context, _ engine.RequestEvent) context.Context {
	return ctx
}

// RequestEnd implements engine.Observer.
func (m *Metrics) RequestEnd(_ context.Context, ev engine.RequestEvent) {
	m.webRequests.WithLabelValues(ev.Module, ev.Path, ev.Method, strconv.Itoa(ev.Status)).Inc()
	m.webDuration.WithLabelValues(ev.Module, ev.Path).Observe(ev.Duration.Seconds())
}

// HostCallStart implements engine.Observer.
func (m *Metrics) HostCallStart(ctx context.Context, _ engine.HostCallEvent) context.Context {
	return ctx
}

// HostCallEnd implements engine.Observer.
func (m *Metrics) HostCallEnd(_ context.Context, ev engine.HostCallEvent) {
	m.hostCalls.WithLabelValues(ev.Module, ev.Function).Inc()
	if ev.Err != nil {
		m.hostErrors.WithLabelValues(ev.Module, ev.Function).Inc()
	}
	m.hostDuration.WithLabelValues(ev.Function).Observe(ev.Duration.Seconds())
}

// ModuleLoad implements engine.Observer.
func (m *Metrics) ModuleLoad(ev engine.LoadEvent) {
	if ev.Reload {
		m.reloads.WithLabelValues(ev.Module, ev.Outcome.String()).Inc()
		m.lastReloadAt.Set(float64(ev.At.UnixNano()) / 1e9)
	}
	if ev.Module == "" {
		return
	}
	switch ev.Outcome {
	case engine.LoadOK:
		m.generation.WithLabelValues(ev.Module).Set(float64(ev.Generation))
		m.loadedAt.WithLabelValues(ev.Module).Set(float64(ev.At.UnixNano()) / 1e9)
	case engine.LoadRemoved:
		// A module that left the config has no generation: its gauges go.
		m.generation.DeleteLabelValues(ev.Module)
		m.loadedAt.DeleteLabelValues(ev.Module)
	case engine.LoadFailed:
		if ev.Generation == 0 {
			m.generation.WithLabelValues(ev.Module).Set(0) // configured, never loaded
		}
	}
}

// StoreOp implements engine.Observer.
func (m *Metrics) StoreOp(ev engine.StoreEvent) {
	m.storeOps.WithLabelValues(ev.Backend, ev.Op).Inc()
	if ev.Err != nil {
		m.storeErrors.WithLabelValues(ev.Backend, ev.Op).Inc()
	}
}

// HTTPClientRequest implements engine.Observer.
func (m *Metrics) HTTPClientRequest(ev engine.HTTPClientEvent) {
	m.httpRequests.WithLabelValues(ev.Module).Inc()
	if ev.Outcome != engine.HTTPOK {
		m.httpErrors.WithLabelValues(ev.Module, ev.Outcome.String()).Inc()
	}
	m.httpDuration.WithLabelValues(ev.Module).Observe(ev.Duration.Seconds())
}

// NotificationDropped implements engine.Observer.
func (m *Metrics) NotificationDropped(callback string) {
	m.dropped.WithLabelValues(callback).Inc()
}

// statsCollector reports the gauges engine.Stats reads, at scrape time.
type statsCollector struct{ m *Metrics }

var (
	descStates = prometheus.NewDesc("luahost_lua_states",
		"Open Lua states (one per module instance; a reload briefly holds two generations).", nil, nil)
	descInFlight = prometheus.NewDesc("luahost_calls_in_flight",
		"Calls into Lua running, queued for a busy state, or parked on a host call.", nil, nil)
	descParked = prometheus.NewDesc("luahost_parked_calls",
		"Calls whose coroutine is parked, waiting for a host call to answer.", nil, nil)
	descTimers = prometheus.NewDesc("luahost_timers",
		"Pending api.looping_background_call and api.delayed_background_call timers.", nil, nil)
	descQueue = prometheus.NewDesc("luahost_notification_queue_length",
		"Fired notifications waiting in the queue (it holds "+strconv.Itoa(engine.NotificationQueueSize)+").", nil, nil)
)

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStates, descInFlight, descParked, descTimers, descQueue} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.eng.Load().Stats() // a nil engine reads the process's gauges
	ch <- prometheus.MustNewConstMetric(descStates, prometheus.GaugeValue, float64(st.LuaStates))
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.CallsInFlight))
	ch <- prometheus.MustNewConstMetric(descParked, prometheus.GaugeValue, float64(st.ParkedCalls))
	ch <- prometheus.MustNewConstMetric(descTimers, prometheus.GaugeValue, float64(st.Timers))
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(st.NotificationQueue))
}
