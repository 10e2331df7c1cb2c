package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/luahost/luahost/engine"
)

// The admin listener (admin_listen: or serve --admin) answers operators,
// never clients: it is a listener of its own so that it can stay on
// loopback or a private network while the modules' web resources face the
// world.
//
//	/metrics  Prometheus metrics (docs/operations.md lists them)
//	/health   200 while the process serves: for liveness checks
//	/ready    200 when every module loaded and the store answers, else
//	          503 with the reason: for load balancers and readiness checks
//	/status   JSON: modules, files, generations, callbacks, paths, errors

// readyTimeout bounds the store's answer to /ready.
const readyTimeout = 2 * time.Second

// statusDoc is /status's JSON.
type statusDoc struct {
	Luahost     buildVersion `json:"luahost"`
	Config      string       `json:"config"`
	Started     time.Time    `json:"started"`
	Ready       bool         `json:"ready"`
	NotReady    string       `json:"not_ready,omitempty"`
	ConfigError string       `json:"config_error,omitempty"`
	// Background says which instance runs background tasks
	// (docs/instances.md).
	Background backgroundStatus `json:"background"`
	Modules    []moduleStatus   `json:"modules"`
}

type backgroundStatus struct {
	Instance string `json:"instance,omitempty"`
	RunOn    string `json:"run_background_tasks_on,omitempty"`
	// Running: this instance runs background tasks now.
	Running bool `json:"running"`
	// With run_background_tasks_on: any, the lease's holder as this
	// instance last heard it, this instance's hold, the store's error.
	Holder     string     `json:"holder,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	LeaseError string     `json:"lease_error,omitempty"`
}

type moduleStatus struct {
	Name       string     `json:"name"`
	File       string     `json:"file"`
	Serving    bool       `json:"serving"`
	Generation int        `json:"generation"`
	LoadedAt   *time.Time `json:"loaded_at,omitempty"`
	Instances  int        `json:"instances,omitempty"`
	Files      []string   `json:"files,omitempty"`
	Callbacks  []string   `json:"callbacks,omitempty"`
	Paths      []string   `json:"paths,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	ErrorAt    *time.Time `json:"error_at,omitempty"`
	// MemoryRestart is the latest restart for going over max_memory.
	MemoryRestart   string     `json:"memory_restart,omitempty"`
	MemoryRestartAt *time.Time `json:"memory_restart_at,omitempty"`
}

// adminHandler serves the admin endpoints for eng. The engine redacts
// secret values from every error it reports, so /status shows none.
func adminHandler(eng *engine.Engine, reg prometheus.Gatherer, configFile string, started time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := eng.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		doc := statusDoc{Luahost: readVersion(), Config: configFile, Started: started, Ready: true, Modules: []moduleStatus{}}
		if err := eng.Ready(ctx); err != nil {
			doc.Ready, doc.NotReady = false, err.Error()
		}
		if err := eng.ConfigReloadError(); err != nil {
			doc.ConfigError = err.Error()
		}
		bg := eng.Background()
		doc.Background = backgroundStatus{Instance: bg.Instance, RunOn: bg.RunOn, Running: bg.Running, Holder: bg.Holder}
		if !bg.LeaseUntil.IsZero() {
			doc.Background.LeaseUntil = &bg.LeaseUntil
		}
		if bg.LeaseError != nil {
			doc.Background.LeaseError = bg.LeaseError.Error()
		}
		for _, st := range eng.Status() {
			m := moduleStatus{Name: st.Name, File: st.File, Serving: st.Serving, Generation: st.Generation,
				Instances: st.Instances, Files: st.Files, Callbacks: st.Callbacks, Paths: st.Paths}
			if st.Serving {
				m.LoadedAt = &st.LoadedAt
			}
			if st.LastError != nil {
				m.LastError, m.ErrorAt = st.LastError.Error(), &st.ErrorAt
			}
			if st.MemoryRestart != nil {
				m.MemoryRestart, m.MemoryRestartAt = st.MemoryRestart.Error(), &st.MemoryRestartAt
			}
			doc.Modules = append(doc.Modules, m)
		}
		writeJSON(w, http.StatusOK, doc)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "luahost admin: /metrics /health /ready /status")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// adminURL turns --admin's value (a URL, or host:port) into a base URL.
func adminURL(s string) (string, error) {
	if s == "" {
		s = os.Getenv("LUAHOST_ADMIN")
	}
	if s == "" {
		return "", errors.New("--admin URL is required (the serve command's admin listener, e.g. http://127.0.0.1:9090), or set $LUAHOST_ADMIN")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/"), nil
}

// adminGet fetches one admin endpoint.
func adminGet(ctx context.Context, base, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
	return resp.StatusCode, b, err
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("luahost status", flag.ContinueOnError)
	admin := fs.String("admin", "", "the admin listener of luahost serve, e.g. http://127.0.0.1:9090 (default $LUAHOST_ADMIN)")
	asJSON := fs.Bool("json", false, "print /status as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	var lo logOpts
	addLogFlags(fs, &lo, "warn")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: luahost status --admin URL [--json]\n\nPrints what a running luahost serve reports at its admin listener's /status.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	base, err := adminURL(*admin)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	code, body, err := adminGet(ctx, base, "/status")
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("%s/status answered %d", base, code)
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	var doc statusDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		fmt.Fprintf(stderr, "error: %s/status is not luahost's status: %v\n", base, err)
		return 1
	}
	printStatus(stdout, doc, time.Now())
	return 0
}

// printStatus writes /status for a person.
func printStatus(w io.Writer, doc statusDoc, now time.Time) {
	fmt.Fprintf(w, "%s\n", doc.Luahost)
	fmt.Fprintf(w, "config:  %s\n", doc.Config)
	fmt.Fprintf(w, "up:      %s (since %s)\n", now.Sub(doc.Started).Round(time.Second), doc.Started.Format(time.RFC3339))
	if doc.Ready {
		fmt.Fprintln(w, "ready:   yes")
	} else {
		fmt.Fprintf(w, "ready:   NO: %s\n", doc.NotReady)
	}
	if doc.Background.Instance != "" {
		fmt.Fprintf(w, "instance: %s\n", doc.Background.Instance)
	}
	fmt.Fprintf(w, "background tasks: %s\n", backgroundLine(doc.Background))
	if doc.Background.LeaseError != "" {
		fmt.Fprintf(w, "  lease store error: %s\n", doc.Background.LeaseError)
	}
	if doc.ConfigError != "" {
		fmt.Fprintf(w, "config error (the running config keeps serving):\n  %s\n", strings.ReplaceAll(doc.ConfigError, "\n", "\n  "))
	}
	fmt.Fprintf(w, "modules: %d\n", len(doc.Modules))
	for _, m := range doc.Modules {
		state := fmt.Sprintf("generation %d", m.Generation)
		if m.LoadedAt != nil {
			state += ", loaded " + m.LoadedAt.Format(time.RFC3339)
		}
		if m.Instances > 1 {
			state += fmt.Sprintf(", %d instances", m.Instances)
		}
		if !m.Serving {
			state = "NOT LOADED"
		}
		fmt.Fprintf(w, "\n  %s (%s): %s\n", m.Name, m.File, state)
		if len(m.Callbacks) > 0 {
			fmt.Fprintf(w, "    callbacks: %s\n", strings.Join(m.Callbacks, ", "))
		}
		if len(m.Paths) > 0 {
			fmt.Fprintf(w, "    web:       %s\n", strings.Join(m.Paths, ", "))
		}
		if len(m.Files) > 0 {
			fmt.Fprintf(w, "    files:     %s\n", strings.Join(m.Files, ", "))
		}
		if m.LastError != "" {
			at := ""
			if m.ErrorAt != nil {
				at = " (" + m.ErrorAt.Format(time.RFC3339) + ")"
			}
			fmt.Fprintf(w, "    last error%s: %s\n", at, m.LastError)
		}
		if m.MemoryRestart != "" {
			at := ""
			if m.MemoryRestartAt != nil {
				at = " (" + m.MemoryRestartAt.Format(time.RFC3339) + ")"
			}
			fmt.Fprintf(w, "    memory restart%s: %s\n", at, m.MemoryRestart)
		}
	}
}

// backgroundLine says where background tasks run, for printStatus.
func backgroundLine(b backgroundStatus) string {
	switch {
	case b.RunOn == "":
		return "run here (run_background_tasks_on is not set: every instance runs them)"
	case b.RunOn != engine.RunOnAny && b.Running:
		return "run here (run_background_tasks_on: " + b.RunOn + ")"
	case b.RunOn != engine.RunOnAny:
		return "run on " + b.RunOn + ", not here (run_background_tasks_on: " + b.RunOn + ")"
	case b.Running:
		until := ""
		if b.LeaseUntil != nil {
			until = " until " + b.LeaseUntil.Format(time.RFC3339) + " unless renewed"
		}
		return "run here: this instance holds the lease" + until
	case b.Holder != "":
		return "run on " + b.Holder + ", which holds the lease"
	default:
		return "run nowhere yet: no instance holds the lease"
	}
}

// cmdHealth is the container health check: exit 0 when serve's admin
// listener answers /health (or /ready with --ready) with 200, else 1.
// Never 2: Docker reserves that exit code.
func cmdHealth(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("luahost health", flag.ContinueOnError)
	admin := fs.String("admin", "", "the admin listener of luahost serve, e.g. http://127.0.0.1:9090 (default $LUAHOST_ADMIN)")
	ready := fs.Bool("ready", false, "ask /ready (every module loaded, the store answering) instead of /health")
	timeout := fs.Duration("timeout", 4*time.Second, "unhealthy when no answer comes within this long")
	var lo logOpts
	addLogFlags(fs, &lo, "warn")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: luahost health --admin URL [--ready]\n\nExits 0 when luahost serve is healthy, 1 when not (for Docker's HEALTHCHECK and other probes).")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		if code != 0 {
			code = 1
		}
		return code
	}
	base, err := adminURL(*admin)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	path := "/health"
	if *ready {
		path = "/ready"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	code, body, err := adminGet(ctx, base, path)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "unhealthy: %v\n", err)
		return 1
	case code != http.StatusOK:
		fmt.Fprintf(stdout, "unhealthy: %s%s answered %d: %s\n", base, path, code, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintln(stdout, "healthy")
	return 0
}
