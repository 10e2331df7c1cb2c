-- Tests of route_presence.lua.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

t.test("receive_all users see everyone", function()
  t.equal(t.call("get_interested_users", "@presence-bot:example.org"), "ALL")
end)

t.test("a route gives its watcher the listed users' presence", function()
  t.same(t.call("get_interested_users", "@alice:example.org"), { "@bob:example.org", "@carol:other.org" })
  t.same(t.call("get_interested_users", "@dave:example.org"), {})
end)

t.test("presence updates go to the receive_all users and the watchers", function()
  local bob = { user_id = "@bob:example.org", state = "online", currently_active = false }
  local dave = { user_id = "@dave:example.org", state = "unavailable", currently_active = false }
  t.same(t.call("get_users_for_states", { bob, dave }), {
    ["@presence-bot:example.org"] = { bob, dave },
    ["@alice:example.org"] = { bob },
  })
end)

t.test("a route to something that is not a user ID is a config error", function()
  t.load{ file = "route_presence.lua", config = { routes = { ["@alice:example.org"] = { "bob" } } } }
  t.raises(t.start, "routes[@alice:example.org]: bob is not a user ID")
end)
