-- Tests of bot_marker.lua.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

local function event(sender)
  return { type = "m.room.message", room_id = "!r:example.org", sender = sender, content = { body = "hi" } }
end

t.test("bots' events are marked", function()
  t.same(t.call("add_field_to_unsigned_callback", event("@github:example.org")), { ["org.example.bot"] = true })
end)

t.test("events from untrusted servers name the server", function()
  t.same(t.call("add_field_to_unsigned_callback", event("@x:spam.example.net")),
    { ["org.example.untrusted_server"] = "spam.example.net" })
end)

t.test("other events get nothing", function()
  t.same(t.call("add_field_to_unsigned_callback", event("@alice:example.org")), {})
end)

t.test("fields the event's unsigned has already are kept", function()
  local ev = event("@github:example.org")
  ev.unsigned = { ["org.example.bot"] = "set by the server" }
  t.same(t.call("add_field_to_unsigned_callback", ev), {})
end)

t.test("a field name without a namespace is a config error", function()
  t.load{ file = "bot_marker.lua", config = { bot_field = "bot" } }
  t.raises(t.start, "bot_field must be a namespaced key such as org.example.bot")
end)
