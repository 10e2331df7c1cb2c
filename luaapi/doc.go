// Package luaapi builds what a module's script sees: the module_api
// table (constants, ConfigError and SynapseError, the register_*
// functions, register_web_resource, on_close, sleep) and the callback
// catalogue, the typed description of every callback from which
// registration checks, the engine's invokers, `luahost call`, the editor
// stubs and the docs tables derive.
//
// Homeserver authors do not import it: package engine is their front
// door. The engine adds the host functions (Synapse's ModuleApi calls)
// to the table this package builds.
package luaapi
