-- Tests of hello.lua, through t.request: the engine's real HTTP handler,
-- in memory.
local t = require("luahost.test")

t.load{ config = "luahost.yaml", module = "hello" }

t.test("hello greets the world, a name in the path or in the query", function()
  t.same(t.request{ path = "/_synapse/client/hello" }.json, { message = "Hello, world!" })
  t.same(t.request{ path = "/_synapse/client/hello/alice" }.json, { message = "Hello, alice!" })
  t.same(t.request{ path = "/_synapse/client/hello", query = { name = "bob" } }.json, { message = "Hello, bob!" })
end)

t.test("hello answers GET only", function()
  local r = t.request{ method = "POST", path = "/_synapse/client/hello", json = {} }
  t.equal(r.status, 405)
  t.equal(r.headers.allow, "GET, HEAD, OPTIONS")
end)
