package stdlib

import (
	"math"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Matrix timestamps (origin_server_ts, expiry times) are integer
// milliseconds since the Unix epoch, so that is this library's unit.
// Lua numbers are float64: exact for milliseconds for the next 285,000 years.

// timeLayouts maps the layout names the library accepts to Go layouts.
// "rfc1123" writes "GMT" as HTTP requires (we always format in UTC).
var timeLayouts = map[string]string{
	"rfc3339":   time.RFC3339,
	"rfc3339ms": "2006-01-02T15:04:05.000Z07:00",
	"rfc1123":   "Mon, 02 Jan 2006 15:04:05 GMT",
	"date":      "2006-01-02",
	"datetime":  "2006-01-02 15:04:05",
}

func init() { register("time", loadTime) }

func loadTime(L *lua.LState, env *Env) lua.LValue {
	now := time.Now
	if env != nil && env.Now != nil {
		now = env.Now
	}
	t := L.CreateTable(0, 8)
	L.SetFuncs(t, map[string]lua.LGFunction{
		"now_ms": func(L *lua.LState) int {
			L.Push(lua.LNumber(now().UnixMilli()))
			return 1
		},
		"now": func(L *lua.LState) int {
			L.Push(lua.LNumber(float64(now().UnixNano()) / 1e9))
			return 1
		},
		"format": func(L *lua.LState) int {
			ms := float64(L.CheckNumber(1))
			if math.IsNaN(ms) || math.IsInf(ms, 0) {
				L.ArgError(1, "finite number of milliseconds expected")
			}
			layout := timeLayout(L, 2)
			tm := time.UnixMilli(int64(math.Floor(ms))).UTC()
			L.Push(lua.LString(tm.Format(layout)))
			return 1
		},
		"parse": func(L *lua.LState) int {
			s := L.CheckString(1)
			name := strings.ToLower(L.OptString(2, "rfc3339"))
			layout := timeLayout(L, 2)
			if name == "rfc1123" {
				// Accept any zone abbreviation on input, not only GMT.
				layout = time.RFC1123
			}
			tm, err := time.Parse(layout, s)
			if err != nil {
				L.Push(lua.LNil)
				L.Push(lua.LString("time.parse: " + err.Error()))
				return 2
			}
			L.Push(lua.LNumber(tm.UnixMilli()))
			return 1
		},
	})
	return t
}

// timeLayout reads argument n: a layout name, a Go layout, or nil for RFC 3339.
func timeLayout(L *lua.LState, n int) string {
	s := L.OptString(n, "rfc3339")
	if l, ok := timeLayouts[strings.ToLower(s)]; ok {
		return l
	}
	return s
}
