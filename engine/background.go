package engine

import (
	"context"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/lease"
	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/internal/sandbox"
)

// Several luahost instances behind one homeserver (docs/instances.md): which of them runs the
// modules' background tasks (looping_background_call, delayed_background_call), as Synapse's
// run_background_tasks_on says which worker runs its own.
//
//   - run_background_tasks_on unset: this instance runs them (one instance, as always);
//   - run_background_tasks_on: NAME: only the instance named NAME runs them;
//   - run_background_tasks_on: any: the instance that holds a lease in the shared store
//     (storage.Leaser, the redis backend) runs them, and another takes over when it dies.
//
// A task run starts only while this instance may run background tasks, and with the lease
// runs under a context that ends when the lease may be lost, so no run overlaps a run on
// another instance. The check is a local timestamp the lease's renewer keeps, not a round trip.

// background is the engine's answer to "does this instance run background tasks now?".
type background struct {
	runOn    string // run_background_tasks_on ("" = every instance)
	instance string // this instance's name ("" unnamed)
	mine     bool   // named: this instance is the one named
	el       *lease.Elector
	stop     context.CancelFunc
	done     chan struct{}
}

// backgroundLeaseName is the lease's name in the store: instances of one homeserver contend
// for it; those of another homeserver sharing the Redis server do not.
func backgroundLeaseName(serverName string) string { return "background:" + serverName }

// startBackground sets e.bg from the config. With run_background_tasks_on: any it needs a
// store that can hold a lease, and makes its first attempt before returning, so the modules'
// constructors already see whether this instance runs background tasks.
func (e *Engine) startBackground(cfg *Config) error {
	b := &background{runOn: cfg.Background.RunOn, instance: cfg.InstanceName}
	if b.instance != "" && !validName.MatchString(b.instance) {
		return &ConfigError{File: cfg.File, Msg: fmt.Sprintf("instance name %q (instance_name, or luahost serve --instance) may only contain letters, digits, '_', '-' and '.'", b.instance)}
	}
	if b.instance == RunOnAny && b.runOn != "" {
		return &ConfigError{File: cfg.File, Msg: fmt.Sprintf("instance name %q is reserved: run_background_tasks_on: %s elects an instance; name this instance otherwise", RunOnAny, RunOnAny)}
	}
	switch b.runOn {
	case "":
		if _, shared := e.store.(storage.Leaser); shared && b.instance != "" {
			e.log.Info("background tasks: every instance runs them (run_background_tasks_on is not set); "+
				"with several instances on one store, set it to one instance's name or to any", "instance", b.instance)
		}
	case RunOnAny:
		l, ok := e.store.(storage.Leaser)
		if !ok {
			name := e.storeCfg.Backend
			if e.opts.Store != nil {
				name = fmt.Sprintf("the embedder's %T", e.opts.Store)
			}
			return backgroundError(cfg, name)
		}
		label := b.instance
		if label == "" {
			host, _ := os.Hostname()
			label = fmt.Sprintf("%s:%d", host, os.Getpid())
		}
		b.el = lease.New(l, lease.Options{Name: backgroundLeaseName(cfg.ServerName), Instance: label,
			TTL: cfg.Background.Lease, Log: e.log})
		ctx, stop := context.WithCancel(context.Background())
		b.stop, b.done = stop, make(chan struct{})
		wait := b.el.Step(ctx)
		go func() {
			defer close(b.done)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			b.el.Run(ctx)
		}()
	default:
		b.mine = b.instance == b.runOn
		if b.mine {
			e.log.Info("background tasks: this instance runs them (run_background_tasks_on names it)", "instance", b.instance)
		} else {
			e.log.Info("background tasks: another instance runs them", "run_background_tasks_on", b.runOn, "instance", b.instance)
		}
	}
	e.bg = b
	return nil
}

// may reports whether a background task may start now, and the context it runs under.
// Safe from any goroutine; a nil *background (an engine made without New) runs everything.
func (b *background) may() (context.Context, bool) {
	switch {
	case b == nil || b.runOn == "":
		return context.Background(), true
	case b.el != nil:
		return b.el.Holding()
	default:
		return context.Background(), b.mine
	}
}

// close stops renewing the lease and releases it, so another instance takes over at once.
// Call it once no background task runs any more (the generations are retired).
func (b *background) close(e *Engine) {
	if b == nil || b.el == nil {
		return
	}
	b.stop()
	<-b.done
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := b.el.Resign(ctx); err != nil {
		e.log.Warn("background tasks: could not release the lease; another instance takes over when it expires", "err", err)
	}
}

// BackgroundStatus says which instance runs the modules' background tasks.
type BackgroundStatus struct {
	// Instance is this instance's name (instance_name:; "" when unnamed).
	Instance string
	// RunOn is run_background_tasks_on ("" when every instance runs them).
	RunOn string
	// Running: this instance runs background tasks now.
	Running bool
	// With run_background_tasks_on: any: Holder is the instance the store last named as
	// the lease's holder ("" before it answered), LeaseUntil when this instance's hold ends
	// unless renewed (zero when it does not hold it), LeaseError the store's last error.
	Holder     string
	LeaseUntil time.Time
	LeaseError error
}

// Background says which instance runs background tasks, as this instance sees it.
func (e *Engine) Background() BackgroundStatus {
	if e == nil {
		return BackgroundStatus{}
	}
	b := e.bg
	if b == nil {
		return BackgroundStatus{Running: true}
	}
	st := BackgroundStatus{Instance: b.instance, RunOn: b.runOn}
	_, st.Running = b.may()
	switch {
	case b.el != nil:
		ls := b.el.Status()
		st.Holder, st.LeaseUntil, st.LeaseError = ls.Holder, ls.Until, ls.Err
	case b.runOn != "":
		st.Holder = b.runOn
	}
	return st
}

// installBackground adds api.should_run_background_tasks (api.worker_name
// is installModAPI's).
func (e *Engine) installBackground(L *lua.LState, api *lua.LTable) {
	api.RawSetString("should_run_background_tasks", L.NewFunction(sandbox.MethodTolerant(api, func(L *lua.LState) int {
		_, ok := e.bg.may()
		L.Push(lua.LBool(ok))
		return 1
	})))
}

// bgOptionKeys are the keys of the options table a background call takes last (Synapse's
// keyword arguments).
var bgOptionKeys = map[string]bool{"run_on_all_instances": true, "desc": true}

// bgOptions are a background call's options.
type bgOptions struct {
	allInstances bool   // run_on_all_instances: run here whichever instance runs background tasks
	desc         string // names the task in logs
}

// backgroundOptions reads the options of a background call whose arguments for fn start at
// from, and returns the index of fn's last argument. The last argument is the options table
// when it is a non-empty table without a metatable whose keys are all option names; any
// other value, a table for fn included, goes to fn. (To pass fn such a table, add an options
// table after it: {run_on_all_instances = false}.)
func backgroundOptions(L *lua.LState, from int) (bgOptions, int) {
	var o bgOptions
	top := L.GetTop()
	if top < from {
		return o, top
	}
	t, ok := L.Get(top).(*lua.LTable)
	if !ok || t.Metatable != lua.LNil {
		return o, top
	}
	n := 0
	isOpts := true
	t.ForEach(func(k, _ lua.LValue) {
		n++
		if s, ok := k.(lua.LString); !ok || !bgOptionKeys[string(s)] {
			isOpts = false
		}
	})
	if n == 0 || !isOpts {
		return o, top
	}
	switch v := t.RawGetString("run_on_all_instances").(type) {
	case *lua.LNilType:
	case lua.LBool:
		o.allInstances = bool(v)
	default:
		L.ArgError(top, fmt.Sprintf("options: run_on_all_instances must be a boolean, got %s", v.Type()))
	}
	switch v := t.RawGetString("desc").(type) {
	case *lua.LNilType:
	case lua.LString:
		o.desc = string(v)
	default:
		L.ArgError(top, fmt.Sprintf("options: desc must be a string, got %s", v.Type()))
	}
	return o, top - 1
}
