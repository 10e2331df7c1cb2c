package engine

import (
	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/luaapi"
)

// installStore adds api.store, the module's namespaced key-value store.
func (e *Engine) installStore(L *lua.LState, api *luaapi.ModuleAPI, mc ModuleConfig) {
}
