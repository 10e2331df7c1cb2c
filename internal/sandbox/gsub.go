package sandbox

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/pm"
)

// gsub replaces gopher-lua's string.gsub, which rebuilds the whole string
// for every match (quadratic: 100k matches in 1 MB take minutes and cannot
// be interrupted). This one assembles the result once, checks the call's
// deadline between replacement calls, and caps the result's size. The
// semantics are Lua 5.1's: %0-%9 and %% in a string replacement, a table
// indexed by the first capture, a function called with the captures; a
// false or nil replacement keeps the match.
func gsub(L *lua.LState) int {
	str := L.CheckString(1)
	pat := L.CheckString(2)
	L.CheckTypes(3, lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	limit := L.OptInt(4, -1)
	src := []byte(str)
	ctx := L.Context()
	// Matches are found in batches so the deadline is checked as the scan
	// goes (gopher-lua's matcher is ~1-2 µs per byte on hostile input).
	const batch = 256
	var mds []*pm.MatchData
	for offset := 0; offset <= len(src); {
		want := batch
		if limit >= 0 {
			want = min(batch, limit-len(mds))
			if want <= 0 {
				break
			}
		}
		found, err := pm.Find(pat, src, offset, want)
		if err != nil {
			L.RaiseError("%s", err.Error())
		}
		mds = append(mds, found...)
		if len(found) < want || strings.HasPrefix(pat, "^") {
			break
		}
		lastM := found[len(found)-1]
		offset = max(lastM.Capture(0)+1, lastM.Capture(1))
		if ctx != nil {
			if err := ctx.Err(); err != nil {
				L.RaiseError("string.gsub: %s", err.Error())
			}
		}
	}
	if len(mds) == 0 {
		L.Push(lua.LString(str))
		L.Push(lua.LNumber(0))
		return 2
	}
	var b strings.Builder
	last := 0
	capture := func(m *pm.MatchData, i int) lua.LValue {
		if m.IsPosCapture(i) {
			return lua.LNumber(m.Capture(i))
		}
		return lua.LString(str[m.Capture(i):m.Capture(i+1)])
	}
	firstCapture := func(m *pm.MatchData) lua.LValue {
		if m.CaptureLength() > 2 {
			return capture(m, 2)
		}
		return capture(m, 0)
	}
	for n, m := range mds {
		start, end := m.Capture(0), m.Capture(1)
		b.WriteString(str[last:start])
		last = end
		whole := str[start:end]
		switch r := repl.(type) {
		case lua.LString, lua.LNumber:
			rs := lua.LVAsString(r)
			for i := 0; i < len(rs); i++ {
				c := rs[i]
				if c != '%' || i+1 == len(rs) {
					b.WriteByte(c)
					continue
				}
				i++
				d := rs[i]
				switch {
				case d == '0':
					b.WriteString(whole)
				case d >= '1' && d <= '9':
					idx := 2 * int(d-'0')
					if idx >= m.CaptureLength() {
						if idx == 2 { // %1 with no captures is the whole match
							b.WriteString(whole)
							continue
						}
						L.RaiseError("invalid capture index %%%c", d)
					}
					b.WriteString(lua.LVAsString(capture(m, idx)))
				default:
					b.WriteByte(d)
				}
			}
		case *lua.LTable:
			v := L.GetTable(r, firstCapture(m))
			if lua.LVIsFalse(v) {
				b.WriteString(whole)
			} else {
				b.WriteString(lua.LVAsString(v))
			}
		case *lua.LFunction:
			if ctx != nil && n%64 == 0 {
				if err := ctx.Err(); err != nil {
					L.RaiseError("string.gsub: %s", err.Error())
				}
			}
			args := make([]lua.LValue, 0, 4)
			if m.CaptureLength() > 2 {
				for i := 2; i < m.CaptureLength(); i += 2 {
					args = append(args, capture(m, i))
				}
			} else {
				args = append(args, lua.LString(whole))
			}
			var v lua.LValue
			NoYield(L, func() int {
				L.Push(r)
				for _, a := range args {
					L.Push(a)
				}
				L.Call(len(args), 1)
				v = L.Get(-1)
				L.Pop(1)
				return 0
			})
			if lua.LVIsFalse(v) {
				b.WriteString(whole)
			} else if s, ok := v.(lua.LString); ok {
				b.WriteString(string(s))
			} else if num, ok := v.(lua.LNumber); ok {
				b.WriteString(num.String())
			} else {
				L.RaiseError("invalid replacement value (a %s)", v.Type().String())
			}
		}
		if b.Len() > MaxStringBuild {
			L.RaiseError("string.gsub: result would exceed %d MiB", MaxStringBuild>>20)
		}
	}
	b.WriteString(str[last:])
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(len(mds)))
	return 2
}
