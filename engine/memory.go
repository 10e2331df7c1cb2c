package engine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
)

// Memory: each module state is bounded by its max_memory, all modules
// together by memory_limit (engine/internal/runtime/memory.go has the
// mechanism). A state found holding more than its limit is restarted
// from a fresh generation.

// defaultMemoryLimit is half of what the cgroup (or else the machine)
// has; 4 GiB when neither can be read.
func defaultMemoryLimit() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n / 2
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int64
			if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil && kb > 0 {
				return kb << 10 / 2
			}
		}
	}
	return 4 << 30
}

// setMemoryLimit applies the config's memory_limit (process-wide: the
// last engine started in a process sets it).
func setMemoryLimit(cfg *Config) {
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = defaultMemoryLimit()
	}
	runtime.SetMemory(runtime.MemoryConfig{ProcessLimit: cfg.MemoryLimit})
}

// roots are the values the engine holds for an instance's state, counted
// when the state is measured. Baton holder only.
func (in *instance) roots() []lua.LValue {
	api := in.api
	out := make([]lua.LValue, 0, len(api.Registrations)+len(api.WebResources)+len(api.OnClose)+1)
	out = append(out, api.Table)
	for _, r := range api.Registrations {
		out = append(out, r.Fn)
	}
	for _, w := range api.WebResources {
		out = append(out, w.Handler)
	}
	for _, fn := range api.OnClose {
		out = append(out, fn)
	}
	return out
}

// overLimit restarts a module whose state holds more than its
// max_memory, once at a time.
func (e *Engine) overLimit(g *generation, size int64) {
	if !g.restarting.CompareAndSwap(false, true) {
		return
	}
	err := fmt.Errorf("memory: a state of the module held %d MiB, over its max_memory of %d MiB; restarted from a fresh generation",
		size>>20, g.cfg.MaxMemory>>20)
	e.log.Error("module over its memory limit; restarting it from a fresh generation",
		"module", g.cfg.Name, "held_mib", size>>20, "max_memory_mib", g.cfg.MaxMemory>>20)
	e.mu.Lock()
	closed := e.closed
	e.memEvents[g.cfg.Name] = loadFailure{err, time.Now()}
	e.updateView()
	e.mu.Unlock()
	if closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.InitTimeout*time.Duration(max(1, g.cfg.Instances))+loadGrace)
	defer cancel()
	if rerr := e.ReloadModule(ctx, g.cfg.Name); rerr != nil {
		e.log.Error("restarting the module failed; the old generation keeps serving", "module", g.cfg.Name, "err", rerr)
	}
}
