-- Tests of bot_ratelimit.lua.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

t.test("bots are not rate limited", function()
  t.same(t.call("get_ratelimit_override_for_user", "@onboarding:example.org", "rc_message"),
    { per_second = 0, burst_count = 0 })
end)

t.test("a limiter of their own applies to bots", function()
  t.same(t.call("get_ratelimit_override_for_user", "@slack-bridge:example.org", "rc_invites.per_issuer"),
    { per_second = 5, burst_count = 50 })
end)

t.test("other users keep the homeserver's limits", function()
  t.equal(t.call("get_ratelimit_override_for_user", "@alice:example.org", "rc_message"), nil)
end)

t.test("an override without burst_count is a config error", function()
  t.load{ file = "bot_ratelimit.lua", config = { bots = { "@bot:example.org" }, override = { per_second = 1 } } }
  t.raises(t.start, "override must be { per_second = <number>, burst_count = <number> }")
end)
