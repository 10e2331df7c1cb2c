package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/stdlib"
)

// api.store.update(key, fn [, ttl_seconds]) and
// api.store.transaction(keys, fn [, ttl_seconds]): read-modify-write with
// a function of the script in the middle. See store.go for the shape.

// storeMaxAttempts bounds the retries of update and transaction: beyond
// it the call raises, and the script may catch that and try later. A
// module's helper reads it when the module loads.
var storeMaxAttempts atomic.Int64

func init() { storeMaxAttempts.Store(64) }

// storeBackoffMax caps the pause between two attempts.
const storeBackoffMax = 50 * time.Millisecond

// errTxnChanged aborts a commit whose keys changed since they were read.
var errTxnChanged = errors.New("the keys changed since they were read")

// storeHelperSrc is the Lua half. Its chunk name starts with "<", so
// errors raised in the host functions it calls point at the script's line.
const storeHelperSrc = `
local get, cas, read, commit, backoff, raise, DELETE, attempts, STORE = ...
local type, format, select = type, string.format, select
local S = {}

function S.update(...)
  local key, fn, ttl = ...
  if key == STORE then key, fn, ttl = select(2, ...) end -- api.store:update(...)
  if type(fn) ~= "function" then
    raise(format("store.update: bad argument #2 (fn): function expected, got %s", type(fn)))
  end
  for attempt = 1, attempts do
    local cur, version = get(key, nil, ttl)
    local new = fn(cur)
    if new == DELETE then new = nil end
    if cas(key, version, new, ttl) then return new end
    backoff(attempt)
  end
  raise(format("store.update: the value at key %q kept changing: gave up after %d attempts (try again later)", key, attempts))
end

function S.transaction(...)
  local keys, fn, ttl = ...
  if keys == STORE then keys, fn, ttl = select(2, ...) end
  if type(fn) ~= "function" then
    raise(format("store.transaction: bad argument #2 (fn): function expected, got %s", type(fn)))
  end
  for attempt = 1, attempts do
    local vals, versions = read(keys, nil, ttl)
    local writes = fn(vals)
    if writes == nil then return nil end
    if type(writes) ~= "table" then
      raise(format("store.transaction: fn must return a table of writes (key = value or api.store.DELETE) or nil, got %s", type(writes)))
    end
    if commit(keys, versions, writes, ttl) then return writes end
    backoff(attempt)
  end
  raise(format("store.transaction: the keys kept changing: gave up after %d attempts (try again later)", attempts))
end

return S
`

// installAtomic adds update, transaction and DELETE to the store table t.
func (ms *moduleStore) installAtomic(L *lua.LState, t *lua.LTable) {
	del := L.NewUserData()
	del.Value = storeDelete{}
	delMeta := L.CreateTable(0, 2)
	delMeta.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString("api.store.DELETE"))
		return 1
	}))
	delMeta.RawSetString("__metatable", lua.LString("api.store.DELETE"))
	del.Metatable = delMeta
	t.RawSetString("DELETE", del)

	// fn makes a host function the helper calls; name is what its errors
	// say (the script called store.update, not an internal function).
	fn := func(name string, prepare func(a *hostArgs) runFunc) lua.LValue {
		holder := L.CreateTable(0, 1)
		ms.e.installOwn(L, holder, ms.ns, "", []hostFunc{{name, true, prepare}})
		return holder.RawGetString(name)
	}
	// get_versioned(key, _, ttl) -> value, version (the stored bytes, or
	// nil when missing). ttl is only checked here, where its argument
	// number matches update's.
	get := fn("store.update", func(a *hostArgs) runFunc {
		key := storeKey(a, 1)
		storeTTL(a, 3)
		return func(ctx context.Context) (sandbox.Result, error) {
			st, err := ms.store()
			if err != nil {
				return nil, ms.fail(ctx, err)
			}
			b, found, err := st.Get(ctx, ms.ns, key)
			if err != nil {
				return nil, ms.fail(ctx, err)
			}
			ms.ok()
			if !found {
				return values(nil, nil), nil
			}
			return func(L *lua.LState) []lua.LValue {
				v, err := stdlib.DecodeJSON(L, b)
				if err != nil {
					panic(sandbox.ResultError{Err: fmt.Errorf("the value at key %q is not JSON: %v", key, err)})
				}
				return []lua.LValue{v, lua.LString(b)}
			}, nil
		}
	})
	cas := fn("store.update", func(a *hostArgs) runFunc {
		key := storeKey(a, 1)
		var old []byte
		if s, ok := a.L.Get(2).(lua.LString); ok {
			old = []byte(s)
		}
		var val []byte
		if v := a.L.Get(3); v != lua.LNil {
			b, err := stdlib.EncodeJSON(a.L, v, false)
			if err != nil {
				a.fail("fn returned a value that cannot be stored: %v", err)
			}
			if err := ms.checkSize(b); err != nil {
				a.fail("fn returned a value that cannot be stored: %v", err)
			}
			val = b
		}
		ttl := storeTTL(a, 4)
		return func(ctx context.Context) (sandbox.Result, error) {
			st, err := ms.store()
			if err != nil {
				return nil, ms.fail(ctx, err)
			}
			swapped, err := st.CompareAndSwap(ctx, ms.ns, key, old, val, ttl)
			if err != nil {
				return nil, ms.fail(ctx, err)
			}
			ms.ok()
			return values(swapped), nil
		}
	})
	read := fn("store.transaction", func(a *hostArgs) runFunc {
		keys := storeTxnKeys(a, 1)
		storeTTL(a, 3)
		return func(ctx context.Context) (sandbox.Result, error) {
			st, err := ms.store()
			if err != nil {
				return nil, ms.fail(ctx, err)
			}
			var snap map[string][]byte
			// A transaction without writes reads every key at one instant.
			err = st.Txn(ctx, ms.ns, keys, func(vals map[string][]byte) (map[string]storage.Write, error) {
				snap = vals
				return nil, nil
			})
			if err != nil {
				return nil, ms.fail(ctx, err)
			}
			ms.ok()
			return func(L *lua.LState) []lua.LValue {
				vals, versions := L.NewTable(), L.NewTable()
				for _, k := range keys {
					b, ok := snap[k]
					if !ok {
						continue
					}
					v, err := stdlib.DecodeJSON(L, b)
					if err != nil {
						panic(sandbox.ResultError{Err: fmt.Errorf("the value at key %q is not JSON: %v", k, err)})
					}
					vals.RawSetString(k, v)
					versions.RawSetString(k, lua.LString(b))
				}
				return []lua.LValue{vals, versions}
			}, nil
		}
	})
	commit := fn("store.transaction", func(a *hostArgs) runFunc {
		keys := storeTxnKeys(a, 1)
		inTxn := make(map[string]bool, len(keys))
		for _, k := range keys {
			inTxn[k] = true
		}
		versions := map[string][]byte{}
		if vt, ok := a.L.Get(2).(*lua.LTable); ok {
			vt.ForEach(func(k, v lua.LValue) {
				versions[lua.LVAsString(k)] = []byte(lua.LVAsString(v))
			})
		}
		wt := a.L.Get(3).(*lua.LTable) // checked by the helper
		ttl := storeTTL(a, 4)
		writes := map[string]storage.Write{}
		var bad string
		wt.ForEach(func(k, v lua.LValue) {
			if bad != "" {
				return
			}
			ks, ok := k.(lua.LString)
			if !ok || !inTxn[string(ks)] {
				bad = fmt.Sprintf("fn wrote key %s, which is not one of the transaction's keys", runtimeString(k))
				return
			}
			if ud, ok := v.(*lua.LUserData); ok {
				if _, isDel := ud.Value.(storeDelete); isDel {
					writes[string(ks)] = storage.Write{}
					return
				}
			}
			b, err := stdlib.EncodeJSON(a.L, v, false)
			if err == nil {
				err = ms.checkSize(b)
			}
			if err != nil {
				bad = fmt.Sprintf("fn returned a value for key %q that cannot be stored: %v", sandbox.Clip(string(ks)), err)
				return
			}
			writes[string(ks)] = storage.Write{Value: b, TTL: ttl}
		})
		if bad != "" {
			a.fail("%s", bad)
		}
		return func(ctx context.Context) (sandbox.Result, error) {
			st, err := ms.store()
			if err != nil {
				return nil, ms.fail(ctx, err)
			}
			err = st.Txn(ctx, ms.ns, keys, func(vals map[string][]byte) (map[string]storage.Write, error) {
				for _, k := range keys {
					cur, present := vals[k]
					was, read := versions[k]
					if present != read || !bytes.Equal(cur, was) {
						return nil, errTxnChanged
					}
				}
				return writes, nil
			})
			if errors.Is(err, errTxnChanged) || errors.Is(err, storage.ErrConflict) {
				ms.ok()
				return values(false), nil
			}
			if err != nil {
				return nil, ms.fail(ctx, err)
			}
			ms.ok()
			return values(true), nil
		}
	})
	backoff := sandbox.HostFunction(L, "store", func(L *lua.LState) *sandbox.HostCall {
		attempt := int(L.CheckNumber(1))
		d := min(storeBackoffMax, time.Duration(1<<min(attempt, 16))*100*time.Microsecond)
		d = time.Duration(rand.Int64N(int64(d)) + 1)
		return &sandbox.HostCall{Inline: true, Run: func(ctx context.Context) (sandbox.Result, error) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}
	})
	raise := L.NewFunction(func(L *lua.LState) int {
		sandbox.RaiseAtScript(L, "%s", L.CheckString(1))
		return 0
	})

	L.Push(sandbox.Helper(L, "store", storeHelperSrc))
	args := []lua.LValue{get, cas, read, commit, backoff, raise, del, lua.LNumber(storeMaxAttempts.Load()), t}
	for _, v := range args {
		L.Push(v)
	}
	L.Call(len(args), 1)
	helper := L.Get(-1).(*lua.LTable)
	L.Pop(1)
	for _, name := range []string{"update", "transaction"} {
		f := helper.RawGetString(name).(*lua.LFunction)
		t.RawSetString(name, f)
	}
}

// storeDelete is api.store.DELETE: in a transaction's writes, or returned
// by an update's function, it deletes the key.
type storeDelete struct{}

// storeTxnKeys reads a transaction's keys: an array of 1 to
// storage.MaxTxnKeys valid keys.
func storeTxnKeys(a *hostArgs, i int) []string {
	t, ok := a.L.Get(i).(*lua.LTable)
	if !ok {
		a.badArg(i, "keys", "array of keys", a.L.Get(i))
	}
	n := t.Len()
	if n == 0 || n > storage.MaxTxnKeys {
		a.fail("bad argument #%d (keys): 1 to %d keys expected, got %d", i, storage.MaxTxnKeys, n)
	}
	keys := make([]string, 0, n)
	for j := 1; j <= n; j++ {
		k, ok := t.RawGetInt(j).(lua.LString)
		if !ok {
			a.fail("bad argument #%d (keys): element %d must be a string, got %s", i, j, t.RawGetInt(j).Type().String())
		}
		switch {
		case k == "":
			a.fail("bad argument #%d (keys): element %d is empty", i, j)
		case len(k) > storage.MaxKeyLen:
			a.fail("bad argument #%d (keys): element %d is %d bytes long, at most %d are allowed", i, j, len(k), storage.MaxKeyLen)
		}
		keys = append(keys, string(k))
	}
	return keys
}

// runtimeString shows a Lua key in an error.
func runtimeString(v lua.LValue) string {
	if s, ok := v.(lua.LString); ok {
		return fmt.Sprintf("%q", string(s))
	}
	return v.Type().String() + " " + v.String()
}
