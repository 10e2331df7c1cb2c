-- Tests of list_spam.lua: run them with
--   luahost test scripts/examples/spam_checker
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

local function message(sender, body)
  return { type = "m.room.message", room_id = "!r:example.org", sender = sender,
           content = { msgtype = "m.text", body = body } }
end

t.test("allows ordinary messages", function()
  t.equal(t.call("check_event_for_spam", message("@alice:example.org", "hello")), "NOT_SPAM")
end)

t.test("refuses listed senders", function()
  t.equal(t.call("check_event_for_spam", message("@spammer:example.org", "hello")), "M_FORBIDDEN")
end)

t.test("refuses banned words, in any case, naming the word", function()
  local verdict, extra = t.call("check_event_for_spam", message("@alice:example.org", "BUY CHEAP watches"))
  t.equal(verdict, "M_FORBIDDEN")
  t.same(extra, { reason = "banned word", word = "buy cheap" })
end)

t.test("listed senders may not invite", function()
  t.equal(t.call("user_may_invite", "@spammer:example.org", "@bob:example.org", "!r:example.org"), "M_FORBIDDEN")
  t.equal(t.call("user_may_invite", "@alice:example.org", "@bob:example.org", "!r:example.org"), "NOT_SPAM")
end)

t.test("a config without evil_users is refused at its config: line", function()
  t.load{ file = "list_spam.lua", config = { banned_words = { "x" } } }
  t.raises(t.start, "evil_users must be a list of user IDs")
end)
