package sandbox

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// loadstring and load replace gopher-lua's, which compile unchecked (a
// deeply nested source overflows the Go stack and kills the process) and
// accept sources of any size. These check the source (see checkSource),
// cap its size at MaxLoadSource and give up at the call's deadline. As in
// Lua 5.1 a source problem is returned (nil, message), not raised.

// asyncCompile is the source size above which compiling runs beside the
// caller, so the caller can return at its deadline: gopher-lua's compile
// step cannot be interrupted.
const asyncCompile = 64 << 10

func loadString(L *lua.LState) int {
	src := L.CheckString(1)
	name := chunkID(L.OptString(2, src))
	return loadSource(L, src, name)
}

func load(L *lua.LState) int {
	fn := L.CheckFunction(1)
	name := chunkID(L.OptString(2, "=(load)"))
	var b strings.Builder
	for {
		var piece lua.LValue
		NoYield(L, func() int {
			L.Push(fn)
			L.Call(0, 1)
			piece = L.Get(-1)
			L.Pop(1)
			return 0
		})
		if piece == lua.LNil {
			break
		}
		s, ok := piece.(lua.LString)
		if !ok {
			if n, isNum := piece.(lua.LNumber); isNum {
				s = lua.LString(n.String())
			} else {
				L.Push(lua.LNil)
				L.Push(lua.LString("reader function must return a string"))
				return 2
			}
		}
		if s == "" {
			break
		}
		if b.Len()+len(s) > MaxLoadSource {
			L.Push(lua.LNil)
			L.Push(lua.LString(fmt.Sprintf("load: source larger than %d MiB", MaxLoadSource>>20)))
			return 2
		}
		b.WriteString(string(s))
	}
	return loadSource(L, b.String(), name)
}

func loadSource(L *lua.LState, src, name string) int {
	if len(src) > MaxLoadSource {
		L.Push(lua.LNil)
		L.Push(lua.LString(fmt.Sprintf("%s: source of %d bytes is larger than the %d MiB limit", name, len(src), MaxLoadSource>>20)))
		return 2
	}
	proto, err := compileFor(L, []byte(src), name)
	if err != nil {
		if ctx := L.Context(); ctx != nil && ctx.Err() != nil {
			L.RaiseError("%s", ctx.Err().Error())
		}
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(L.NewFunctionFromProto(proto))
	return 1
}

// compileFor compiles src for a call on L: within L's deadline, and for a
// large source beside the caller so that the call returns at the deadline
// even while gopher-lua's compiler is still busy. At most one such
// abandoned compile per state runs at a time.
func compileFor(L *lua.LState, src []byte, name string) (*lua.FunctionProto, error) {
	ctx := L.Context()
	if ctx == nil || len(src) <= asyncCompile {
		return CompileContext(ctx, src, name)
	}
	gate := poolOf(L).compiling
	select {
	case gate <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	type result struct {
		proto *lua.FunctionProto
		err   error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-gate }()
		p, err := CompileContext(ctx, src, name)
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		return r.proto, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// chunkID names a loaded chunk as Lua 5.1 does: "=name" and "@name" are
// used as given (without the mark); any other name is a source, shown as
// [string "its first line..."].
func chunkID(source string) string {
	if strings.HasPrefix(source, "=") || strings.HasPrefix(source, "@") {
		return source[1:]
	}
	const max = 60 - len(`[string "..."]`)
	line, _, multi := strings.Cut(source, "\n")
	if len(line) > max {
		line, multi = line[:max], true
	}
	if multi {
		return `[string "` + line + `..."]`
	}
	return `[string "` + line + `"]`
}
