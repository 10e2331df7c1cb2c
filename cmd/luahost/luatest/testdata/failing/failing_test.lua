-- Each test here fails on purpose; luatest_test.go checks how.
local t = require("luahost.test")

t.load{ file = "mod.lua", config = { answer = 42 } }

t.test("equal", function()
  t.equal(t.call("is_user_expired", "@a:example.org"), false, "expiry")
end)

t.test("same", function()
  t.same({ list = { 1, 2 }, name = "x" }, { list = { 1, 3 }, extra = true })
end)

t.test("lua error", function()
  local cfg = nil
  return cfg.answer
end)

t.test("module error", function()
  t.call("is_user_expired", "@boom:example.org")
end)

t.test("unregistered callback", function()
  t.call("check_event_for_spam", { type = "m.room.message", sender = "@a:example.org", content = {} })
end)

t.test("endless loop", function()
  while true do end
end)

t.test("outside the sandbox", function()
  return io.open("/etc/passwd")
end)

t.test("bad seed", function()
  t.seed{ users = { { id = "@a:example.org", admn = true } } }
end)

t.test("raises without an error", function()
  t.raises(function() end, "something")
end)

t.test("a module that does not load", function()
  t.load{ file = "mod.lua", config = {} }
  t.call("is_user_expired", "@a:example.org")
end)

t.test("misspelt request key", function()
  t.request{ pth = "/x" }
end)

t.test("a table raised", function()
  error({ code = 42 })
end)

t.test("nil raised", function()
  error(nil)
end)

t.test("a test inside a test", function()
  t.test("inner", function() end)
end)

t.test("a runaway timer", function()
  t.load{ file = "looper.lua" }
  t.start()
  t.clock.advance(24 * 60 * 60)
end)

t.test("a module that loops", function()
  t.load{ file = "looper.lua", timeout = "100ms" }
  t.call("is_user_expired", "@a:example.org")
end)
