package engine

import (
	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/luaapi"
)

// installHostFunctions adds the host-backed functions (Synapse's
// ModuleApi calls) to a module's api table. It runs before the module's
// runtime starts, so it may touch L directly.
func (e *Engine) installHostFunctions(L *lua.LState, api *luaapi.ModuleAPI, mc ModuleConfig) {
}
