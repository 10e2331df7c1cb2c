package luaapi

import (
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/stdlib"
)

// Errors a script raises as values: error(api.ConfigError(msg)) and
// error(api.SynapseError(code, msg [, errcode [, extra]])). They are
// tables (so scripts can read err.code and err.msg) with a shared
// metatable that marks them; tostring gives a readable message.

const regErrMeta = "luahost.errmeta"

// SynapseError is a script's error(api.SynapseError(...)): the HTTP
// status and Matrix error the operation answers with.
type SynapseError struct {
	Code    int
	Msg     string
	Errcode string
	Extra   map[string]any
	Where   string // script position where the error was made
}

func (e *SynapseError) Error() string {
	return fmt.Sprintf("SynapseError %d %s: %s", e.Code, e.Errcode, e.Msg)
}

// ConfigError is a script's error(api.ConfigError(msg)) from parse_config.
type ConfigError struct {
	Msg   string
	Where string
}

func (e *ConfigError) Error() string { return "ConfigError: " + e.Msg }

func errMeta(L *lua.LState) *lua.LTable {
	if mt, ok := L.G.Registry.RawGetString(regErrMeta).(*lua.LTable); ok {
		return mt
	}
	mt := L.CreateTable(0, 1)
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		kind := lua.LVAsString(t.RawGetString("kind"))
		if kind == "SynapseError" {
			L.Push(lua.LString(fmt.Sprintf("SynapseError(%s, %s): %s", lua.LVAsString(t.RawGetString("code")),
				lua.LVAsString(t.RawGetString("errcode")), lua.LVAsString(t.RawGetString("msg")))))
			return 1
		}
		L.Push(lua.LString(kind + ": " + lua.LVAsString(t.RawGetString("msg"))))
		return 1
	}))
	L.G.Registry.RawSetString(regErrMeta, mt)
	return mt
}

func newConfigError(L *lua.LState) int {
	t := L.CreateTable(0, 3)
	t.RawSetString("kind", lua.LString("ConfigError"))
	t.RawSetString("msg", lua.LString(L.CheckString(1)))
	t.RawSetString("where", lua.LString(L.Where(1)))
	t.Metatable = errMeta(L)
	L.Push(t)
	return 1
}

func newSynapseError(L *lua.LState) int {
	code := L.CheckInt(1)
	if code < 400 || code > 599 {
		L.ArgError(1, fmt.Sprintf("HTTP status %d is not an error status (400-599)", code))
	}
	t := L.CreateTable(0, 6)
	t.RawSetString("kind", lua.LString("SynapseError"))
	t.RawSetString("code", lua.LNumber(code))
	t.RawSetString("msg", lua.LString(L.CheckString(2)))
	t.RawSetString("errcode", lua.LString(L.OptString(3, "M_UNKNOWN")))
	if extra, ok := L.Get(4).(*lua.LTable); ok {
		t.RawSetString("extra", extra)
	}
	t.RawSetString("where", lua.LString(L.Where(1)))
	t.Metatable = errMeta(L)
	L.Push(t)
	return 1
}

// NewSynapseErrorValue builds the Lua value of a SynapseError, for Go code
// that raises one into a script (get_user_by_req's 401s).
func NewSynapseErrorValue(L *lua.LState, code int, msg, errcode string) lua.LValue {
	t := L.CreateTable(0, 5)
	t.RawSetString("kind", lua.LString("SynapseError"))
	t.RawSetString("code", lua.LNumber(code))
	t.RawSetString("msg", lua.LString(msg))
	t.RawSetString("errcode", lua.LString(errcode))
	t.Metatable = errMeta(L)
	return t
}

// RaisedError classifies an error value a script raised: a
// *SynapseError, a *ConfigError, or nil for anything else.
func RaisedError(L *lua.LState, v lua.LValue) error {
	t, ok := v.(*lua.LTable)
	if !ok || t.Metatable != errMeta(L) {
		return nil
	}
	where := lua.LVAsString(t.RawGetString("where"))
	switch lua.LVAsString(t.RawGetString("kind")) {
	case "ConfigError":
		return &ConfigError{Msg: lua.LVAsString(t.RawGetString("msg")), Where: where}
	case "SynapseError":
		e := &SynapseError{
			Code:    int(lua.LVAsNumber(t.RawGetString("code"))),
			Msg:     lua.LVAsString(t.RawGetString("msg")),
			Errcode: lua.LVAsString(t.RawGetString("errcode")),
			Where:   where,
		}
		if extra, ok := t.RawGetString("extra").(*lua.LTable); ok {
			if m, err := stdlib.FromLua(L, extra); err == nil {
				e.Extra, _ = m.(map[string]any)
			}
		}
		return e
	}
	return nil
}
