-- Tests of room_rules.lua.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

local function message(room_id, sender, body)
  return { type = "m.room.message", room_id = room_id, sender = sender, event_id = "$e",
           content = { msgtype = "m.text", body = body } }
end

t.describe("announcement rooms", function()
  t.test("only listed senders post messages", function()
    t.same({ t.call("check_event_allowed", message("!news:example.org", "@bob:example.org", "hi all"), {}) }, { false })
    t.same({ t.call("check_event_allowed", message("!news:example.org", "@comms:example.org", "Closed on Friday"), {}) }, { true })
  end)

  t.test("state events follow the room's own rules", function()
    local join = { type = "m.room.member", room_id = "!news:example.org", sender = "@bob:example.org",
                   state_key = "@bob:example.org", content = { membership = "join" } }
    t.equal(t.call("check_event_allowed", join, {}), true)
  end)

  t.test("refusals are logged", function()
    t.call("check_event_allowed", message("!news:example.org", "@bob:example.org", "hi"), {})
    t.equal(t.logs()[#t.logs()].msg, "refused a message in an announcement room")
  end)
end)

t.test("listed words are replaced and the HTML body dropped", function()
  local ev = message("!r:example.org", "@bob:example.org", "what the Heck, darn it")
  ev.content.format = "org.matrix.custom.html"
  ev.content.formatted_body = "what the <b>Heck</b>, darn it"
  local allowed, replacement = t.call("check_event_allowed", ev, {})
  t.equal(allowed, true)
  t.same(replacement.content, { msgtype = "m.text", body = "what the h*ck, d**n it" })
  -- Whole words only.
  t.same({ t.call("check_event_allowed", message("!r:example.org", "@bob:example.org", "the darned hecktic schedule"), {}) }, { true })
end)

t.test("only publishable rooms may become public", function()
  t.equal(t.call("check_visibility_can_be_modified", "!lobby:example.org", {}, "public"), true)
  t.equal(t.call("check_visibility_can_be_modified", "!secret:example.org", {}, "public"), false)
  t.equal(t.call("check_visibility_can_be_modified", "!secret:example.org", {}, "private"), true)
end)

t.test("third-party invites only to email addresses on listed domains", function()
  t.equal(t.call("check_threepid_can_be_invited", "email", "Carol@Example.org", {}), true)
  t.equal(t.call("check_threepid_can_be_invited", "email", "carol@gmail.com", {}), false)
  t.equal(t.call("check_threepid_can_be_invited", "msisdn", "447700900000", {}), false)
end)

t.describe("room creation", function()
  t.test("rooms that users create stay on this server", function()
    local content = t.call("on_create_room", { user_id = "@bob:example.org" }, { name = "Team" }, false)
    t.same(content, { name = "Team", creation_content = { ["m.federate"] = false } })
  end)

  t.test("admins create what they like", function()
    local content = t.call("on_create_room", { user_id = "@admin:example.org" }, { name = "Town hall", visibility = "public" }, true)
    t.same(content, { name = "Town hall", visibility = "public" })
  end)

  t.test("only admins publish new rooms", function()
    t.raises(function()
      t.call("on_create_room", { user_id = "@bob:example.org" }, { name = "Town hall", visibility = "public" }, false)
    end, "Only server admins may create rooms in the public directory")
  end)
end)

t.test("a room ID that is not one is a config error", function()
  t.load{ file = "room_rules.lua", config = { announcement_rooms = { news = { "@comms:example.org" } } } }
  t.raises(t.start, "announcement_rooms: news is not a room ID (!room:server)")
end)
