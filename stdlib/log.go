package stdlib

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// logMaxDepth bounds how deep nested field tables are converted; deeper
// tables (and cycles) are logged as "<table>".
const logMaxDepth = 8

func init() { register("log", loadLog) }

func loadLog(L *lua.LState, env *Env) lua.LValue {
	t := L.CreateTable(0, 8)
	for name, level := range map[string]slog.Level{
		"debug": slog.LevelDebug,
		"info":  slog.LevelInfo,
		"warn":  slog.LevelWarn,
		"error": slog.LevelError,
	} {
		t.RawSetString(name, L.NewFunction(logFunc(env, level)))
	}
	return t
}

func logFunc(env *Env, level slog.Level) lua.LGFunction {
	return func(L *lua.LState) int {
		msg := L.CheckString(1)
		fields := L.OptTable(2, nil)
		logger := env.Log()
		ctx := L.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		if !logger.Enabled(ctx, level) {
			return 0
		}
		attrs := []slog.Attr{
			slog.String("module", env.Module),
			slog.String("script", strings.TrimSuffix(L.Where(1), ":")),
		}
		if fields != nil {
			attrs = append(attrs, logAttrs(fields, 0)...)
		}
		logger.LogAttrs(ctx, level, msg, attrs...)
		return 0
	}
}

// logAttrs turns a field table's string keys (sorted, so records are
// stable) into attributes. Number keys are written as strings; other keys
// are skipped.
func logAttrs(t *lua.LTable, depth int) []slog.Attr {
	var keys []string
	vals := map[string]lua.LValue{}
	t.ForEach(func(k, v lua.LValue) {
		var ks string
		switch k := k.(type) {
		case lua.LString:
			ks = string(k)
		case lua.LNumber:
			ks = k.String()
		default:
			return
		}
		keys = append(keys, ks)
		vals[ks] = v
	})
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, logAttr(k, vals[k], depth))
	}
	return attrs
}

// logAttr converts one value: scalars as themselves, arrays as a slice,
// other tables as a group (nested fields), anything else by type name.
func logAttr(key string, v lua.LValue, depth int) slog.Attr {
	if t, ok := v.(*lua.LTable); ok && depth < logMaxDepth {
		if n := t.Len(); n > 0 && logIsArray(t, n) {
			return slog.Any(key, logSlice(t, n, depth+1))
		}
		return slog.Attr{Key: key, Value: slog.GroupValue(logAttrs(t, depth+1)...)}
	}
	return slog.Any(key, logValue(v, depth))
}

// logValue converts a value for use inside an array.
func logValue(v lua.LValue, depth int) any {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil
	case lua.LBool:
		return bool(v)
	case lua.LString:
		return string(v)
	case lua.LNumber:
		f := float64(v)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case *lua.LTable:
		if depth >= logMaxDepth {
			return "<table>"
		}
		if n := v.Len(); n > 0 && logIsArray(v, n) {
			return logSlice(v, n, depth+1)
		}
		m := map[string]any{}
		v.ForEach(func(k, e lua.LValue) {
			switch k.(type) {
			case lua.LString, lua.LNumber:
				m[k.String()] = logValue(e, depth+1)
			}
		})
		return m
	default:
		return "<" + v.Type().String() + ">"
	}
}

func logSlice(t *lua.LTable, n, depth int) []any {
	out := make([]any, n)
	for i := 1; i <= n; i++ {
		out[i-1] = logValue(t.RawGetInt(i), depth)
	}
	return out
}

// logIsArray reports whether t holds exactly the keys 1..n.
func logIsArray(t *lua.LTable, n int) bool {
	count := 0
	t.ForEach(func(lua.LValue, lua.LValue) { count++ })
	return count == n
}
