package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// api.store is the Lua face of engine/storage (docs/storage.md). Each
// function is a yielding host function: prepare checks the arguments and
// encodes the value as JSON on the module's owner goroutine, Run calls the
// Store on its own goroutine, and the Result builder decodes the JSON back
// into Lua values on the owner goroutine again. The namespace is the
// module's store_namespace (by default its name), so modules cannot see
// each other's keys unless they name the same namespace on purpose.
//
// The atomic updates (update, transaction) call a function of the script
// between reading and writing, so they cannot be one host call: the
// function is Lua and runs on the module's coroutine. They are a small
// Lua helper (storeHelperSrc) over host functions that read with a
// version (the stored bytes) and write only if the bytes are still those
// (CompareAndSwap, Txn); on a conflict the helper reads again and calls
// the function again, a bounded number of times with a growing, jittered
// pause between attempts.

// storeLogEvery is how often an ongoing storage outage is logged again for
// one module; the first failure of a burst is logged at once.
var storeLogEvery = 10 * time.Second

// maxTTLSeconds keeps ttl * time.Second inside time.Duration.
const maxTTLSeconds = float64(math.MaxInt64/int64(time.Second)) - 1

// moduleStore is one module state's access to the engine's store.
type moduleStore struct {
	e  *Engine
	ns string
	// maxValue caps one value, as JSON (max_store_value).
	maxValue int
	st       atomic.Pointer[storage.Store] // cached once e.Store() succeeded

	failing atomic.Bool // an outage is in progress (fast path for successes)
	mu      sync.Mutex
	since   time.Time // start of the outage
	lastLog time.Time // last "storage unavailable" line
	failed  int       // failed calls in this outage
}

// installStore adds api.store, the module's namespaced key-value store.
func (e *Engine) installStore(L *lua.LState, api *luaapi.ModuleAPI, mc ModuleConfig) {
	ns := mc.StoreNamespace
	if ns == "" {
		ns = mc.Name
	}
	ms := &moduleStore{e: e, ns: ns, maxValue: mc.MaxStoreValue}
	if ms.maxValue <= 0 {
		ms.maxValue = DefaultMaxStoreValue
	}
	t := L.CreateTable(0, 16)
	api.Table.RawSetString("store", t)
	luaapi.GuardLazy(L, t, "api.store", "function", func(L *lua.LState, t *lua.LTable) {
		e.installOwn(L, t, mc.Name, "store.", []hostFunc{
			{"get", true, func(a *hostArgs) runFunc {
				key := storeKey(a, 1)
				return func(ctx context.Context) (sandbox.Result, error) {
					var b []byte
					var found bool
					if err := ms.do(ctx, "get", func(st storage.Store) (err error) {
						b, found, err = st.Get(ctx, ms.ns, key)
						return err
					}); err != nil {
						return nil, err
					}
					if !found {
						return values(nil), nil
					}
					return func(L *lua.LState) []lua.LValue {
						v, err := stdlib.DecodeJSON(L, b)
						if err != nil {
							panic(sandbox.ResultError{Err: fmt.Errorf("the value at key %q is not JSON: %v", key, err)})
						}
						return []lua.LValue{v}
					}, nil
				}
			}},
			{"set", true, func(a *hostArgs) runFunc {
				key := storeKey(a, 1)
				b := ms.value(a, 2)
				ttl, ifAbsent := storeSetOptions(a, 3)
				return func(ctx context.Context) (sandbox.Result, error) {
					st, err := ms.store()
					if err != nil {
						return nil, ms.fail(ctx, err)
					}
					stored := true
					if ifAbsent {
						stored, err = st.SetIfAbsent(ctx, ms.ns, key, b, ttl)
					} else {
						err = st.Set(ctx, ms.ns, key, b, ttl)
					}
					if err != nil {
						return nil, ms.fail(ctx, err)
					}
					ms.ok()
					return values(stored), nil
				}
			}},
			{"set_if_absent", true, func(a *hostArgs) runFunc {
				key := storeKey(a, 1)
				b := ms.value(a, 2)
				ttl := storeTTL(a, 3)
				return func(ctx context.Context) (sandbox.Result, error) {
					var stored bool
					err := ms.do(ctx, "set", func(st storage.Store) (err error) {
						stored, err = st.SetIfAbsent(ctx, ms.ns, key, b, ttl)
						return err
					})
					if err != nil {
						return nil, err
					}
					return values(stored), nil
				}
			}},
			{"delete", true, func(a *hostArgs) runFunc {
				key := storeKey(a, 1)
				return func(ctx context.Context) (sandbox.Result, error) {
					return nil, ms.do(ctx, "delete", func(st storage.Store) error { return st.Delete(ctx, ms.ns, key) })
				}
			}},
			{"incr", true, func(a *hostArgs) runFunc {
				key := storeKey(a, 1)
				by := int64(1)
				if a.L.Get(2) != lua.LNil {
					by = storeInt(a, 2, "by")
				}
				ttl := storeTTL(a, 3)
				return func(ctx context.Context) (sandbox.Result, error) {
					var n int64
					if err := ms.do(ctx, "incr", func(st storage.Store) (err error) {
						n, err = st.Incr(ctx, ms.ns, key, by, ttl)
						return err
					}); err != nil {
						return nil, err
					}
					return func(*lua.LState) []lua.LValue { return []lua.LValue{lua.LNumber(n)} }, nil
				}
			}},
			{"list", true, func(a *hostArgs) runFunc {
				prefix := a.optStr(1, "prefix")
				return func(ctx context.Context) (sandbox.Result, error) {
					var keys []string
					if err := ms.do(ctx, "list", func(st storage.Store) (err error) {
						keys, err = st.List(ctx, ms.ns, prefix)
						return err
					}); err != nil {
						return nil, err
					}
					return func(L *lua.LState) []lua.LValue {
						arr := stdlib.NewArray(L, len(keys))
						for i, k := range keys {
							arr.RawSetInt(i+1, lua.LString(k))
						}
						return []lua.LValue{arr}
					}, nil
				}
			}},
		})
		ms.installAtomic(L, t)
	})
}

// value reads the value argument of set: anything json can encode but
// nil, at most max_store_value bytes of JSON.
func (ms *moduleStore) value(a *hostArgs, i int) []byte {
	v := a.L.Get(i)
	if v == lua.LNil {
		a.fail("bad argument #%d (value): a value expected, got nil (use api.store.delete to remove a key)", i)
	}
	b, err := stdlib.EncodeJSON(a.L, v, false)
	if err != nil {
		a.fail("bad argument #%d (value): %v", i, err)
	}
	if err := ms.checkSize(b); err != nil {
		a.fail("bad argument #%d (value): %v", i, err)
	}
	return b
}

// checkSize refuses a value over the module's max_store_value: ten 60 MB
// values made a 917 MB bolt file in 4.5 s.
func (ms *moduleStore) checkSize(b []byte) error {
	if len(b) > ms.maxValue {
		return fmt.Errorf("%d bytes as JSON, over the module's max_store_value quota of %d bytes", len(b), ms.maxValue)
	}
	return nil
}

// storeSetOptions reads set's third argument: ttl_seconds, or a table
// {ttl = seconds, if_absent = boolean}.
func storeSetOptions(a *hostArgs, i int) (ttl time.Duration, ifAbsent bool) {
	opts, ok := a.L.Get(i).(*lua.LTable)
	if !ok {
		return storeTTL(a, i), false
	}
	var bad string
	opts.ForEach(func(k, _ lua.LValue) {
		if s, _ := k.(lua.LString); s != "ttl" && s != "if_absent" && bad == "" {
			bad = lua.LVAsString(k)
		}
	})
	if bad != "" {
		a.fail("bad argument #%d (options): unknown option %q (valid: ttl, if_absent)", i, bad)
	}
	switch v := opts.RawGetString("if_absent").(type) {
	case *lua.LNilType:
	case lua.LBool:
		ifAbsent = bool(v)
	default:
		a.fail("bad argument #%d (options): if_absent must be a boolean, got %s", i, v.Type().String())
	}
	ttl = storeTTLOf(a, opts.RawGetString("ttl"), fmt.Sprintf("bad argument #%d (options.ttl)", i))
	return ttl, ifAbsent
}

// storeKey reads a key argument: a non-empty string of at most
// storage.MaxKeyLen bytes.
func storeKey(a *hostArgs, i int) string {
	key := a.str(i, "key")
	switch {
	case key == "":
		a.fail("bad argument #%d (key): the key is empty", i)
	case len(key) > storage.MaxKeyLen:
		a.fail("bad argument #%d (key): the key is %d bytes long, at most %d are allowed", i, len(key), storage.MaxKeyLen)
	}
	return key
}

// storeInt reads an integer argument (a number without a fraction that
// fits in 64 bits).
func storeInt(a *hostArgs, i int, what string) int64 {
	v := a.L.Get(i)
	n, ok := v.(lua.LNumber)
	if !ok {
		a.badArg(i, what, "integer", v)
	}
	f := float64(n)
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		a.fail("bad argument #%d (%s): integer expected, got %v", i, what, f)
	}
	return int64(f)
}

// storeTTL reads an optional ttl_seconds argument: nil (never expires) or
// a positive number of seconds.
func storeTTL(a *hostArgs, i int) time.Duration {
	return storeTTLOf(a, a.L.Get(i), fmt.Sprintf("bad argument #%d (ttl_seconds)", i))
}

// storeTTLOf reads a ttl value; what names it in errors.
func storeTTLOf(a *hostArgs, v lua.LValue, what string) time.Duration {
	if v == lua.LNil {
		return 0
	}
	n, ok := v.(lua.LNumber)
	if !ok {
		a.fail("%s: number expected, got %s", what, v.Type().String())
	}
	f := float64(n)
	if !(f > 0) || f > maxTTLSeconds { // also catches NaN
		a.fail("%s: a positive number of seconds expected, got %v", what, f)
	}
	d := time.Duration(f * float64(time.Second))
	if d < time.Millisecond {
		d = time.Millisecond // Redis's precision; never 0, which would mean "no expiry"
	}
	return d
}

// do runs one operation on the store: the error it returns is the one the
// script sees, and the observer hears of the operation.
func (ms *moduleStore) do(ctx context.Context, op string, f func(st storage.Store) error) error {
	obs := ms.e.obs
	var start time.Time
	if obs != nil {
		start = time.Now()
	}
	st, err := ms.store()
	if err == nil {
		err = f(st)
	}
	if obs != nil {
		obs.StoreOp(StoreEvent{Module: ms.ns, Backend: ms.e.storeName, Op: op, Duration: time.Since(start), Err: ms.e.redactErr(err)})
	}
	if err != nil {
		return ms.fail(ctx, err)
	}
	ms.ok()
	return nil
}

// store returns the engine's store, opening it on first use.
func (ms *moduleStore) store() (storage.Store, error) {
	if p := ms.st.Load(); p != nil {
		return *p, nil
	}
	st, err := ms.e.openStore()
	if err != nil {
		// The store could not be opened (Redis unreachable, bolt file
		// locked, engine closed): an outage as far as the script knows.
		return nil, &storeOpenError{err}
	}
	ms.st.Store(&st)
	return st, nil
}

type storeOpenError struct{ err error }

func (e *storeOpenError) Error() string { return e.err.Error() }
func (e *storeOpenError) Unwrap() error { return e.err }

// fail turns a store error into the error the script sees, and logs an
// outage at most once per burst.
func (ms *moduleStore) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		// The call's own deadline: the runtime reports the timeout.
		return ctx.Err()
	}
	msg := strings.TrimPrefix(err.Error(), "storage: ")
	var oe *storeOpenError
	if errors.As(err, &oe) || storage.IsUnavailable(err) {
		ms.outage(err)
		return fmt.Errorf("storage unavailable: %s", msg)
	}
	return errors.New(msg)
}

// outage records a failed call and logs the first of a burst, then at
// most once per storeLogEvery while the failures go on.
func (ms *moduleStore) outage(err error) {
	now := time.Now()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.failed++
	if !ms.failing.Load() {
		ms.failing.Store(true)
		ms.since = now
	} else if now.Sub(ms.lastLog) < storeLogEvery {
		return
	}
	ms.e.log.Error("storage unavailable; api.store calls fail until it is back",
		"module", ms.ns, "err", err, "failed_calls", ms.failed, "outage", now.Sub(ms.since).Round(time.Millisecond).String())
	ms.lastLog = now
}

// ok ends an outage, if there was one.
func (ms *moduleStore) ok() {
	if !ms.failing.Load() {
		return
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if !ms.failing.Load() {
		return
	}
	ms.e.log.Info("storage recovered", "module", ms.ns, "failed_calls", ms.failed,
		"outage", time.Since(ms.since).Round(time.Millisecond).String())
	ms.failing.Store(false)
	ms.failed = 0
}
