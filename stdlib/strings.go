package stdlib

import (
	"strings"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// maxStringResult caps strings this package builds from smaller inputs
// (replace, join, re.gsub). gopher-lua has no memory limit per state, and a
// replacement that multiplies its input (strings.replace(s, "", big)) could
// otherwise take the whole process down.
const maxStringResult = 64 << 20

func init() { register("strings", loadStrings) }

func loadStrings(L *lua.LState, _ *Env) lua.LValue {
	t := L.CreateTable(0, 8)
	L.SetFuncs(t, map[string]lua.LGFunction{
		"split": func(L *lua.LState) int {
			parts := strings.SplitN(L.CheckString(1), L.CheckString(2), L.OptInt(3, -1))
			out := L.CreateTable(len(parts), 0)
			for _, p := range parts {
				out.Append(lua.LString(p))
			}
			L.Push(out)
			return 1
		},
		"fields": func(L *lua.LState) int {
			parts := strings.Fields(L.CheckString(1))
			out := L.CreateTable(len(parts), 0)
			for _, p := range parts {
				out.Append(lua.LString(p))
			}
			L.Push(out)
			return 1
		},
		"trim": func(L *lua.LState) int {
			s := L.CheckString(1)
			if L.Get(2) == lua.LNil {
				L.Push(lua.LString(strings.TrimSpace(s)))
			} else {
				L.Push(lua.LString(strings.Trim(s, L.CheckString(2))))
			}
			return 1
		},
		"trim_prefix":    strFn2(strings.TrimPrefix),
		"trim_suffix":    strFn2(strings.TrimSuffix),
		"has_prefix":     strPred(strings.HasPrefix),
		"has_suffix":     strPred(strings.HasSuffix),
		"contains":       strPred(strings.Contains),
		"casefold_equal": strPred(strings.EqualFold),
		"lower": func(L *lua.LState) int {
			L.Push(lua.LString(strings.ToLower(L.CheckString(1))))
			return 1
		},
		"upper": func(L *lua.LState) int {
			L.Push(lua.LString(strings.ToUpper(L.CheckString(1))))
			return 1
		},
		"index": func(L *lua.LState) int {
			i := strings.Index(L.CheckString(1), L.CheckString(2))
			if i < 0 {
				L.Push(lua.LNil)
			} else {
				L.Push(lua.LNumber(i + 1))
			}
			return 1
		},
		"count": func(L *lua.LState) int {
			L.Push(lua.LNumber(strings.Count(L.CheckString(1), L.CheckString(2))))
			return 1
		},
		"replace": func(L *lua.LState) int {
			s, old, new := L.CheckString(1), L.CheckString(2), L.CheckString(3)
			n := L.OptInt(4, -1)
			if len(new) > len(old) {
				count := strings.Count(s, old)
				if n >= 0 && n < count {
					count = n
				}
				if int64(len(s))+int64(count)*int64(len(new)-len(old)) > maxStringResult {
					L.RaiseError("strings.replace: result larger than %d bytes", maxStringResult)
				}
			}
			L.Push(lua.LString(strings.Replace(s, old, new, n)))
			return 1
		},
		"join": func(L *lua.LState) int {
			arr := L.CheckTable(1)
			sep := L.CheckString(2)
			n := arr.Len()
			parts := make([]string, n)
			size := 0
			for i := 1; i <= n; i++ {
				switch v := arr.RawGetInt(i).(type) {
				case lua.LString:
					parts[i-1] = string(v)
				case lua.LNumber:
					parts[i-1] = v.String()
				default:
					L.ArgError(1, "element "+lua.LNumber(i).String()+" is a "+v.Type().String()+", expected string or number")
				}
				size += len(parts[i-1]) + len(sep)
				if size > maxStringResult {
					L.RaiseError("strings.join: result larger than %d bytes", maxStringResult)
				}
			}
			L.Push(lua.LString(strings.Join(parts, sep)))
			return 1
		},
		"rune_len": func(L *lua.LState) int {
			L.Push(lua.LNumber(utf8.RuneCountInString(L.CheckString(1))))
			return 1
		},
		"valid_utf8": func(L *lua.LState) int {
			L.Push(lua.LBool(utf8.ValidString(L.CheckString(1))))
			return 1
		},
	})
	return t
}

func strFn2(f func(string, string) string) lua.LGFunction {
	return func(L *lua.LState) int {
		L.Push(lua.LString(f(L.CheckString(1), L.CheckString(2))))
		return 1
	}
}

func strPred(f func(string, string) bool) lua.LGFunction {
	return func(L *lua.LState) int {
		L.Push(lua.LBool(f(L.CheckString(1), L.CheckString(2))))
		return 1
	}
}
