package runtime

import (
	"errors"
	"runtime/metrics"
	"sync/atomic"
	"time"
	"unsafe"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
)

// Memory. gopher-lua has no allocation hook and no per-state limit, so
// memory is bounded in three layers:
//
//   - builtins that build big values (string.rep, format, concat, ...) cap
//     their results (the sandbox);
//   - the watchdog reads the process heap at every tick; a step during
//     which the heap grew by more than its module's limit, or any running
//     step while the heap is over the process limit, is interrupted with
//     ErrMemory (the script sees "memory limit exceeded" at its line);
//   - a state that may hold too much is measured, by walking what it
//     reaches, with its baton in hand: after a step interrupted for memory,
//     and whenever the heap grew by a quarter of the smallest module limit
//     since the last round. A state over its limit is reported (OnOverLimit)
//     so the engine restarts the module from a fresh generation.

// ErrMemory is the reason a step interrupted for memory fails with.
var ErrMemory = errors.New("memory limit exceeded")

// MemoryConfig bounds memory; the zero value turns the checks off.
type MemoryConfig struct {
	// ProcessLimit is the heap size above which every running step is
	// interrupted and every state measured.
	ProcessLimit int64
}

var (
	memCfg     atomic.Pointer[MemoryConfig]
	heapNow    atomic.Int64 // the last heap reading, bytes
	heapAtWalk atomic.Int64 // the heap at the last measuring round
	minLimit   atomic.Int64 // the smallest module limit, for the round trigger
)

// SetMemory sets the process-wide memory bound.
func SetMemory(c MemoryConfig) { memCfg.Store(&c) }

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// readHeap reads the heap (a few µs: only the watchdog does, per tick).
func readHeap() int64 {
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(heapSample[0].Value.Uint64())
}

// checkMemory is the watchdog's memory check at one tick, with w.mu held.
func (w *watchdog) checkMemory(now int64) {
	heap := readHeap()
	heapNow.Store(heap)
	cfg := memCfg.Load()
	over := cfg != nil && cfg.ProcessLimit > 0 && heap > cfg.ProcessLimit
	for r := range w.rts {
		t := r.cur.Load()
		if t != nil && r.maxMemory > 0 && (over || heap-t.heapAtStart.Load() > r.maxMemory) {
			if c := r.ctxNow.Load(); c != nil {
				c.cancel(ErrMemory)
			}
		}
	}
	// A measuring round: every state that ran since the last one.
	step := minLimit.Load() / 4
	if over || (step > 0 && heap-heapAtWalk.Load() > step) {
		heapAtWalk.Store(heap)
		for r := range w.rts {
			if r.maxMemory > 0 && (over || r.dirty.Swap(false)) {
				r.requestMeasure()
			}
		}
	}
}

// requestMeasure has the state measured by its next baton holder, or now
// by a goroutine of its own if it is idle. Any goroutine.
func (r *Runtime) requestMeasure() {
	if !r.measure.CompareAndSwap(false, true) {
		return
	}
	r.mu.Lock()
	idle := !r.busy && !r.closing
	r.mu.Unlock()
	if idle {
		go r.Do(func(*lua.LState) { r.measureNow() })
	}
}

// measureNow walks the state if a measurement was asked for and reports
// a state over its limit. Baton holder only.
func (r *Runtime) measureNow() {
	if !r.measure.Swap(false) || r.closed {
		return
	}
	size := r.Size()
	r.lastSize.Store(size)
	if size > r.maxMemory && r.onOverLimit != nil {
		go r.onOverLimit(size)
	}
}

// Size estimates what the state holds: its globals, registry, the roots
// the engine gives (registered functions, ...) and its coroutines'
// stacks. Baton holder only. The walk stops at a budget (a huge state
// reports at least what was counted).
func (r *Runtime) Size() int64 {
	m := &meter{seen: map[unsafe.Pointer]struct{}{}, budget: 50_000_000, deadline: time.Now().Add(2 * time.Second)}
	m.value(r.L.G.Global)
	m.value(r.L.G.Registry)
	if r.roots != nil {
		for _, v := range r.roots() {
			m.value(v)
		}
	}
	for _, th := range sandbox.EngineThreads(r.L) {
		m.thread(th)
	}
	m.drain()
	return m.size
}

// meter walks Lua values, iteratively (a deep structure must not overflow
// the Go stack), counting each object once.
type meter struct {
	seen     map[unsafe.Pointer]struct{}
	stack    []lua.LValue
	size     int64
	budget   int
	deadline time.Time
}

// Approximate costs of gopher-lua's objects on a 64-bit build.
const (
	valueBytes    = 16  // an LValue interface
	entryBytes    = 48  // a hash entry (key, value, map overhead)
	tableBytes    = 120 // an LTable
	functionBytes = 80
	userdataBytes = 64
	threadBytes   = 4096 // stacks and frames of a coroutine
	stringBytes   = 16
	longString    = 256 // strings longer than this are counted once
)

func (m *meter) first(p unsafe.Pointer) bool {
	if _, ok := m.seen[p]; ok {
		return false
	}
	m.seen[p] = struct{}{}
	return true
}

func (m *meter) value(v lua.LValue) {
	if v != nil {
		m.stack = append(m.stack, v)
	}
}

func (m *meter) drain() {
	for len(m.stack) > 0 && m.budget > 0 {
		v := m.stack[len(m.stack)-1]
		m.stack = m.stack[:len(m.stack)-1]
		m.budget--
		if m.budget%100_000 == 0 && time.Now().After(m.deadline) {
			return
		}
		switch v := v.(type) {
		case lua.LString:
			n := len(v)
			if n > longString {
				if !m.first(unsafe.Pointer(unsafe.StringData(string(v)))) {
					continue
				}
			}
			m.size += int64(n) + stringBytes
		case *lua.LTable:
			if !m.first(unsafe.Pointer(v)) {
				continue
			}
			m.size += tableBytes
			v.ForEach(func(k, val lua.LValue) {
				m.size += entryBytes
				m.value(k)
				m.value(val)
			})
			if v.Metatable != nil {
				m.value(v.Metatable)
			}
		case *lua.LFunction:
			if !m.first(unsafe.Pointer(v)) {
				continue
			}
			m.size += functionBytes
			if v.Env != nil {
				m.value(v.Env)
			}
			for _, uv := range v.Upvalues {
				if uv != nil {
					m.value(uv.Value())
				}
			}
		case *lua.LUserData:
			if !m.first(unsafe.Pointer(v)) {
				continue
			}
			m.size += userdataBytes
			if v.Env != nil {
				m.value(v.Env)
			}
			if v.Metatable != nil {
				m.value(v.Metatable)
			}
		case *lua.LState:
			m.thread(v)
		}
	}
}

// thread counts a coroutine and the locals of its frames.
func (m *meter) thread(th *lua.LState) {
	if th == nil || !m.first(unsafe.Pointer(th)) {
		return
	}
	m.size += threadBytes
	for level := 0; level < 256; level++ {
		dbg, ok := th.GetStack(level)
		if !ok {
			break
		}
		for n := 1; n < 256; n++ {
			name, v := th.GetLocal(dbg, n)
			if name == "" {
				break
			}
			m.value(v)
		}
	}
}
