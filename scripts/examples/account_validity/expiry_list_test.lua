-- Tests of expiry_list.lua. validity_days is 365: t.clock.advance moves
-- a year on in no time.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

local DAY = 24 * 60 * 60

t.test("listed users are expired, exempt users never, others have no opinion", function()
  t.equal(t.call("is_user_expired", "@former-employee:example.org"), true)
  t.equal(t.call("is_user_expired", "@admin:example.org"), false)
  t.equal(t.call("is_user_expired", "@alice:example.org"), nil)
end)

t.test("accounts registered while the module runs expire after validity_days", function()
  t.call("on_user_registration", "@new:example.org")
  t.equal(t.call("is_user_expired", "@new:example.org"), false, "just registered")
  t.clock.advance(365 * DAY)
  t.equal(t.call("is_user_expired", "@new:example.org"), false, "exactly a year later")
  t.clock.advance(1)
  t.equal(t.call("is_user_expired", "@new:example.org"), true, "a year and a second later")
end)

t.test("registrations and logins are logged", function()
  t.call("on_user_registration", "@new:example.org")
  t.call("on_user_login", "@new:example.org", "m.login.password", nil)
  local logs = t.logs()
  t.equal(logs[#logs - 1].msg, "new account")
  t.equal(logs[#logs - 1].user_id, "@new:example.org")
  t.equal(logs[#logs].msg, "login")
  t.equal(logs[#logs].auth_provider_type, "m.login.password")
end)

t.test("a user ID that is not one is a config error", function()
  t.load{ file = "expiry_list.lua", config = { expired_users = { "former-employee" } } }
  t.raises(t.start, "expired_users: former-employee is not a user ID (@user:server)")
end)
