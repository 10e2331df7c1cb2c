package engine

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// The config keys of several luahost instances behind one homeserver (docs/instances.md):
// run_background_tasks_on: and background_lease: (instance_name: is config_modapi.go's). They live here, apart from config.go's
// core keys.

// DefaultBackgroundLease is the lease's length with run_background_tasks_on: any unless
// background_lease says otherwise: how long a dead holder's background tasks may pause.
const DefaultBackgroundLease = 15 * time.Second

const (
	minBackgroundLease = time.Second
	maxBackgroundLease = 10 * time.Minute
)

// RunOnAny is the run_background_tasks_on value that elects the instance through a lease.
const RunOnAny = "any"

// BackgroundConfig says which luahost instance runs the modules' background tasks
// (looping_background_call, delayed_background_call).
type BackgroundConfig struct {
	// RunOn is run_background_tasks_on: "" (every instance runs them, as a single instance
	// does), an instance's name (only that instance runs them), or RunOnAny (one instance,
	// elected through a lease in the shared store).
	RunOn string
	// Lease is the lease's length with RunOnAny (background_lease:, default 15s).
	Lease time.Duration
	// Line is the line of run_background_tasks_on:, for errors found when the engine starts.
	Line int
}

// parseInstancesKey reads the top-level keys run_background_tasks_on and background_lease.
func parseInstancesKey(cfg *Config, key string, v *yaml.Node, fail func(*yaml.Node, string, ...any)) {
	switch key {
	case "run_background_tasks_on":
		s := scalar(v, fail, key)
		if s != RunOnAny && !validName.MatchString(s) {
			fail(v, "run_background_tasks_on must be an instance name (letters, digits, '_', '-', '.') or %q, got %q", RunOnAny, s)
			return
		}
		cfg.Background.RunOn, cfg.Background.Line = s, v.Line
	case "background_lease":
		d, err := parseDuration(scalar(v, fail, key), maxTimeout)
		if err != nil {
			fail(v, "background_lease: %v", err)
			return
		}
		if d < minBackgroundLease || d > maxBackgroundLease {
			fail(v, "background_lease must be from %v to %v, got %v", minBackgroundLease, maxBackgroundLease, d)
			return
		}
		cfg.Background.Lease = d
	}
}

// checkInstances checks what the instance keys need of the rest of the config.
func checkInstances(cfg *Config, fail func(*yaml.Node, string, ...any)) {
	if cfg.Background.Lease == 0 {
		cfg.Background.Lease = DefaultBackgroundLease
	}
	at := &yaml.Node{Line: cfg.Background.Line}
	if cfg.InstanceName == RunOnAny && cfg.Background.RunOn != "" {
		fail(at, "instance_name %q is reserved: run_background_tasks_on: %s elects an instance; name this instance otherwise", RunOnAny, RunOnAny)
	}
	if cfg.Background.RunOn == RunOnAny && cfg.Storage.Backend != "" && cfg.Storage.Backend != "redis" {
		fail(at, "run_background_tasks_on: %s elects one instance through a lease in a store every instance shares, "+
			"but storage.backend is %s, which one process owns: set storage: {backend: redis, url: redis://HOST:PORT/DB}, "+
			"or name the instance that runs them (run_background_tasks_on: NAME)", RunOnAny, cfg.Storage.Backend)
	}
}

// backgroundError is the error New returns when run_background_tasks_on: any finds a store
// that cannot hold a lease.
func backgroundError(cfg *Config, store string) error {
	return &ConfigError{File: cfg.File, Line: cfg.Background.Line, Msg: fmt.Sprintf(
		"run_background_tasks_on: %s elects one instance through a lease in a store every instance shares, "+
			"but api.store is %s, which cannot hold one: set storage: {backend: redis, url: redis://HOST:PORT/DB}, "+
			"or name the instance that runs them (run_background_tasks_on: NAME)", RunOnAny, store)}
}
