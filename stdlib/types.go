package stdlib

import (
	"embed"
	"io/fs"
)

//go:embed types/*.lua
var typesFS embed.FS

// Types holds the LuaLS (lua-language-server) stubs: stdlib.lua (these
// libraries), module_api.lua (generated from the callback catalogue) and
// luahost_test.lua (the test API). `luahost new` copies them beside a new
// module so that editors type-check it against this version of luahost.
func Types() fs.FS {
	sub, err := fs.Sub(typesFS, "types")
	if err != nil {
		panic("luahost: " + err.Error())
	}
	return sub
}
