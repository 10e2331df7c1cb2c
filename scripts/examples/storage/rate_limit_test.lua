-- Tests of rate_limit.lua. The window is 60 seconds, but the tests take
-- milliseconds: t.clock moves the time the store's expiry follows.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

local function message(sender)
  return { type = "m.room.message", room_id = "!r:example.org", sender = sender, content = { body = "hi" } }
end

local function send(sender, n)
  local verdicts = {}
  for i = 1, n do verdicts[i] = t.call("check_event_for_spam", message(sender)) end
  return verdicts
end

t.test("allows max_messages per window, then refuses", function()
  local verdicts = send("@alice:example.org", 6)
  t.same(verdicts, { "NOT_SPAM", "NOT_SPAM", "NOT_SPAM", "NOT_SPAM", "NOT_SPAM", "M_LIMIT_EXCEEDED" })
end)

t.test("counts each sender on its own", function()
  send("@alice:example.org", 6)
  t.equal(t.call("check_event_for_spam", message("@bob:example.org")), "NOT_SPAM")
end)

t.test("the window ends after window_seconds", function()
  send("@alice:example.org", 5)
  t.clock.advance(59)
  t.equal(t.call("check_event_for_spam", message("@alice:example.org")), "M_LIMIT_EXCEEDED", "1 s before the end")
  t.clock.advance(1)
  t.equal(t.call("check_event_for_spam", message("@alice:example.org")), "NOT_SPAM", "a new window")
end)

t.test("exempt senders and other event types are never counted", function()
  t.same(send("@announcements:example.org", 10)[10], "NOT_SPAM")
  local reaction = { type = "m.reaction", room_id = "!r:example.org", sender = "@alice:example.org", content = {} }
  for _ = 1, 10 do t.equal(t.call("check_event_for_spam", reaction), "NOT_SPAM") end
end)

t.test("every test starts with an empty store", function()
  t.equal(send("@alice:example.org", 1)[1], "NOT_SPAM")
end)

t.test("a bad window is a config error", function()
  t.load{ file = "rate_limit.lua", config = { window_seconds = 0 } }
  t.raises(t.start, "window_seconds must be a positive number")
end)
