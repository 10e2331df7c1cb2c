package lint

// sandboxRemoved lists what a stock gopher-lua state offers and the
// luahost sandbox does not, with what to do instead. A name here that the
// Env does have (another embedder's sandbox) is not reported.
var sandboxRemoved = map[string]string{
	"io":                  " (no file access); keep data in api.store and settings in the module's config",
	"debug":               "; trace with print or require(\"log\")",
	"package":             "; require(\"name\") loads name.lua from the module's folder or a bundled library",
	"dofile":              " (no file access); require(\"name\") loads the module's own files",
	"loadfile":            " (no file access); require(\"name\") loads the module's own files",
	"module":              "; a file returns its table instead (local M = {} ... return M)",
	"require":             "",
	"newproxy":            "; use setmetatable on a table",
	"channel":             " (gopher-lua's Go channels are not offered)",
	"_printregs":          "",
	"_GOPHER_LUA_VERSION": "",
	"os.execute":          " (no processes)",
	"os.exit":             " (a module cannot stop the server); raise an error instead",
	"os.getenv":           "; pass settings through the module's config",
	"os.setenv":           " (the environment belongs to the server)",
	"os.remove":           " (no file access)",
	"os.rename":           " (no file access)",
	"os.tmpname":          " (no file access)",
	"os.setlocale":        " (the locale belongs to the server)",
	"string.dump":         " (no bytecode)",
}

// notLua51 explains names from later Lua versions and one common slip;
// gopher-lua is Lua 5.1.
var notLua51 = map[string]string{
	"table.unpack": " (gopher-lua is Lua 5.1: use unpack)",
	"table.pack":   " (gopher-lua is Lua 5.1: use {...} and select(\"#\", ...))",
	"utf8":         " (gopher-lua is Lua 5.1: there is no utf8 library)",
	"bit32":        " (gopher-lua is Lua 5.1: there is no bit32 library)",
	"api":          " (api is the second parameter of M.new(config, api), or local api = require(\"module_api\"))",
}

// notPorted are Synapse ModuleApi methods luahost leaves out on purpose
// (docs/module_api.md, "Not ported").
var notPorted = map[string]string{
	"run_db_interaction":      " (luahost has no SQL access to the homeserver: use api.store)",
	"make_deferred_yieldable": " (not needed: host calls yield by themselves)",
	"defer_to_thread":         " (not needed: host calls yield by themselves)",
}
