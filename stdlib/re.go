package stdlib

import (
	"errors"
	"regexp"
	"regexp/syntax"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The re library exposes Go's regexp (RE2 syntax). RE2 matches in time
// linear in the input, so a module may run patterns over hostile message
// bodies; Lua's own string.find/gsub patterns backtrack and gsub is
// quadratic and uninterruptible in gopher-lua (issue #521).

// reCacheMax bounds the per-state cache of compiled patterns. A module that
// builds patterns from input would otherwise grow it without limit; when it
// is full the whole cache is dropped, which is cheap and keeps the hot
// patterns of a well-behaved module cached almost always.
const reCacheMax = 256

type reCache struct {
	m map[string]*regexp.Regexp
}

func init() { register("re", loadRe) }

func loadRe(L *lua.LState, env *Env) lua.LValue {
	c := env.Cache("re", func() any { return &reCache{m: map[string]*regexp.Regexp{}} }).(*reCache)
	compile := func(L *lua.LState, n int) *regexp.Regexp {
		pattern := L.CheckString(n)
		if re, ok := c.m[pattern]; ok {
			return re
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			L.RaiseError("re: invalid pattern %q: %s", pattern, reReason(err))
		}
		if len(c.m) >= reCacheMax {
			c.m = make(map[string]*regexp.Regexp, reCacheMax)
		}
		c.m[pattern] = re
		return re
	}

	t := L.CreateTable(0, 8)
	L.SetFuncs(t, map[string]lua.LGFunction{
		"match": func(L *lua.LState) int {
			re := compile(L, 1)
			L.Push(lua.LBool(re.MatchString(L.CheckString(2))))
			return 1
		},
		"find": func(L *lua.LState) int {
			re := compile(L, 1)
			s := L.CheckString(2)
			m := re.FindStringSubmatchIndex(s)
			if m == nil {
				L.Push(lua.LNil)
				return 1
			}
			for i := 0; i < len(m); i += 2 {
				L.Push(reGroup(s, m, i/2))
			}
			return len(m) / 2
		},
		"find_named": func(L *lua.LState) int {
			re := compile(L, 1)
			s := L.CheckString(2)
			m := re.FindStringSubmatchIndex(s)
			if m == nil {
				L.Push(lua.LNil)
				return 1
			}
			out := L.CreateTable(0, re.NumSubexp())
			for i, name := range re.SubexpNames() {
				if name != "" && m[2*i] >= 0 {
					out.RawSetString(name, lua.LString(s[m[2*i]:m[2*i+1]]))
				}
			}
			L.Push(out)
			return 1
		},
		"find_all": func(L *lua.LState) int {
			re := compile(L, 1)
			s := L.CheckString(2)
			n := L.OptInt(3, -1)
			all := re.FindAllStringSubmatchIndex(s, n)
			out := L.CreateTable(len(all), 0)
			groups := re.NumSubexp()
			for _, m := range all {
				if groups == 0 {
					out.Append(lua.LString(s[m[0]:m[1]]))
					continue
				}
				item := L.CreateTable(groups+1, 0)
				for g := 0; g <= groups; g++ {
					item.Append(reGroup(s, m, g))
				}
				out.Append(item)
			}
			L.Push(out)
			return 1
		},
		"gsub": reGsub(compile),
		"split": func(L *lua.LState) int {
			re := compile(L, 1)
			s := L.CheckString(2)
			n, captures := reSplitOptions(L)
			var parts []lua.LValue
			if captures {
				parts = reSplitCaptures(re, s, n)
			} else {
				for _, p := range re.Split(s, n) {
					parts = append(parts, lua.LString(p))
				}
			}
			out := L.CreateTable(len(parts), 0)
			for _, p := range parts {
				out.Append(p)
			}
			L.Push(out)
			return 1
		},
		"quote": func(L *lua.LState) int {
			L.Push(lua.LString(regexp.QuoteMeta(L.CheckString(1))))
			return 1
		},
		"valid": func(L *lua.LState) int {
			pattern := L.CheckString(1)
			if _, ok := c.m[pattern]; ok {
				L.Push(lua.LTrue)
				return 1
			}
			if _, err := regexp.Compile(pattern); err != nil {
				L.Push(lua.LFalse)
				L.Push(lua.LString(reReason(err)))
				return 2
			}
			L.Push(lua.LTrue)
			return 1
		},
	})
	return t
}

// reSplitOptions reads split's optional arguments: n, then an options
// table {captures = true, n = ...}; re.split(p, s, {captures = true}) and
// re.split(p, s, 3, {captures = true}) both work.
func reSplitOptions(L *lua.LState) (n int, captures bool) {
	n = -1
	at := 3
	if v, ok := L.Get(3).(lua.LNumber); ok {
		n = int(v)
		at = 4
	} else if L.Get(3) != lua.LNil {
		if _, ok := L.Get(3).(*lua.LTable); !ok {
			L.ArgError(3, "n (a number) or an options table expected, got "+L.Get(3).Type().String())
		}
	}
	switch o := L.Get(at).(type) {
	case *lua.LNilType:
	case *lua.LTable:
		o.ForEach(func(k, v lua.LValue) {
			switch lua.LVAsString(k) {
			case "captures":
				b, ok := v.(lua.LBool)
				if !ok {
					L.ArgError(at, "options.captures must be a boolean")
				}
				captures = bool(b)
			case "n":
				num, ok := v.(lua.LNumber)
				if !ok {
					L.ArgError(at, "options.n must be a number")
				}
				n = int(num)
			default:
				L.ArgError(at, "unknown option "+lua.LVAsString(k)+" (valid: captures, n)")
			}
		})
	default:
		L.ArgError(at, "options table expected, got "+o.Type().String())
	}
	return n, captures
}

// reSplitCaptures is regexp.Split (the same pieces for the same n) that
// also keeps, after each piece, the text of every capture group of the
// separator that ended it, as Python's re.split does; a group that did
// not take part in the match is false (Python's None). n counts pieces,
// not groups.
func reSplitCaptures(re *regexp.Regexp, s string, n int) []lua.LValue {
	if n == 0 {
		return nil
	}
	if len(re.String()) > 0 && len(s) == 0 {
		return []lua.LValue{lua.LString("")}
	}
	matches := re.FindAllStringSubmatchIndex(s, n)
	var out []lua.LValue
	pieces := 0
	beg, end := 0, 0
	for _, m := range matches {
		if n > 0 && pieces == n-1 {
			break
		}
		end = m[0]
		if m[1] != 0 {
			out = append(out, lua.LString(s[beg:end]))
			pieces++
			for g := 1; g < len(m)/2; g++ {
				out = append(out, reGroup(s, m, g))
			}
		}
		beg = m[1]
	}
	if end != len(s) {
		out = append(out, lua.LString(s[beg:]))
	}
	return out
}

// reReason is the RE2 reason without Go's "error parsing regexp: " prefix.
func reReason(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return se.Code.String() + ": `" + se.Expr + "`"
	}
	return err.Error()
}

// reGroup returns group g of match m in s, or false when the group did not
// take part in the match (false rather than nil keeps arrays free of holes).
func reGroup(s string, m []int, g int) lua.LValue {
	if m[2*g] < 0 {
		return lua.LFalse
	}
	return lua.LString(s[m[2*g]:m[2*g+1]])
}

// reGsub implements re.gsub(pattern, s, repl [, n]). The matches are found
// in one linear pass, then the result is assembled; a function replacement
// is called once per match, and the call's context is checked between
// matches so a deadline stops a long run even when each call is quick.
func reGsub(compile func(*lua.LState, int) *regexp.Regexp) lua.LGFunction {
	gsub := reGsubRaw(compile)
	// A host call inside the replacement function cannot yield: say so.
	return func(L *lua.LState) int { return NoYield(L, func() int { return gsub(L) }) }
}

func reGsubRaw(compile func(*lua.LState, int) *regexp.Regexp) lua.LGFunction {
	return func(L *lua.LState) int {
		re := compile(L, 1)
		s := L.CheckString(2)
		repl := L.Get(3)
		n := L.OptInt(4, -1)
		switch repl.(type) {
		case lua.LString, lua.LNumber, *lua.LFunction, *lua.LTable:
		default:
			L.ArgError(3, "string, function or table expected, got "+repl.Type().String())
		}
		all := re.FindAllStringSubmatchIndex(s, n)
		if len(all) == 0 {
			L.Push(lua.LString(s))
			L.Push(lua.LNumber(0))
			return 2
		}
		size := len(s)
		if r, ok := repl.(lua.LString); ok && !strings.Contains(string(r), "$") {
			// A literal replacement: the result's size is known up front.
			for _, m := range all {
				size += len(r) - (m[1] - m[0])
				if size > maxStringResult {
					L.RaiseError("re.gsub: result larger than %d bytes", maxStringResult)
				}
			}
		}
		ctx := L.Context()
		var b strings.Builder
		b.Grow(size)
		var buf []byte
		last := 0
		_, isFn := repl.(*lua.LFunction)
		for i, m := range all {
			// Between every pair of calls into Lua; every 64 matches
			// otherwise (string expansion cannot run long per match).
			if ctx != nil && (isFn || i&63 == 0) {
				select {
				case <-ctx.Done():
					L.RaiseError("re.gsub: %v after %d of %d replacements", ctx.Err(), i, len(all))
				default:
				}
			}
			b.WriteString(s[last:m[0]])
			last = m[1]
			switch r := repl.(type) {
			case lua.LString:
				buf = re.ExpandString(buf[:0], string(r), s, m)
				b.Write(buf)
			case lua.LNumber:
				buf = re.ExpandString(buf[:0], r.String(), s, m)
				b.Write(buf)
			case *lua.LTable:
				key := reGroup(s, m, 0)
				if len(m) > 2 {
					key = reGroup(s, m, 1)
				}
				reWriteRepl(L, &b, L.GetTable(r, key), s[m[0]:m[1]])
			case *lua.LFunction:
				args := make([]lua.LValue, len(m)/2)
				for g := range args {
					args[g] = reGroup(s, m, g)
				}
				L.CallByParam(lua.P{Fn: r, NRet: 1, Protect: false}, args...)
				v := L.Get(-1)
				L.Pop(1)
				reWriteRepl(L, &b, v, s[m[0]:m[1]])
			}
			if b.Len() > maxStringResult {
				L.RaiseError("re.gsub: result larger than %d bytes", maxStringResult)
			}
		}
		b.WriteString(s[last:])
		L.Push(lua.LString(b.String()))
		L.Push(lua.LNumber(len(all)))
		return 2
	}
}

// reWriteRepl writes a table or function replacement value: a string or
// number replaces the match, nil or false keeps it.
func reWriteRepl(L *lua.LState, b *strings.Builder, v lua.LValue, whole string) {
	switch v := v.(type) {
	case lua.LString:
		b.WriteString(string(v))
	case lua.LNumber:
		b.WriteString(v.String())
	case *lua.LNilType:
		b.WriteString(whole)
	case lua.LBool:
		if v {
			L.RaiseError("re.gsub: invalid replacement value (a boolean true)")
		}
		b.WriteString(whole)
	default:
		L.RaiseError("re.gsub: invalid replacement value (a %s)", v.Type().String())
	}
}
