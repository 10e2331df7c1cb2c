-- Tests of shared_secret_auth.lua. A test file may require the bundled
-- libraries too: crypto mints the tokens a trusted service would.
local t = require("luahost.test")
local crypto = require("crypto")

t.load{ config = "luahost.yaml" }

local SECRET = "change-me-to-a-long-random-secret"
local LOGIN = "com.devture.shared_secret_auth"

local function token(user_id) return crypto.hmac_sha512(SECRET, user_id) end

t.test("a user logs in with the HMAC of their user ID", function()
  t.seed{ users = { { id = "@alice:example.org" } } }
  t.equal(t.call("auth_checkers", "alice", LOGIN, { token = token("@alice:example.org") }), "@alice:example.org")
  t.equal(t.call("auth_checkers", "@alice:example.org", LOGIN, { token = token("@alice:example.org") }), "@alice:example.org")
end)

t.test("another user's token, a wrong token or an unknown user log nobody in", function()
  t.seed{ users = { { id = "@alice:example.org" } } }
  t.equal(t.call("auth_checkers", "alice", LOGIN, { token = token("@bob:example.org") }), nil)
  t.equal(t.call("auth_checkers", "alice", LOGIN, { token = "00ff" }), nil)
  t.equal(t.call("auth_checkers", "nobody", LOGIN, { token = token("@nobody:example.org") }), nil)
end)

t.test("password logins are off unless enabled", function()
  t.seed{ users = { { id = "@alice:example.org" } } }
  t.equal(t.call("auth_checkers", "alice", "m.login.password", { password = token("@alice:example.org") }), nil)
end)

t.test("with m_login_password_support_enabled the token is also a password", function()
  t.load{ file = "shared_secret_auth.lua",
          config = { shared_secret = SECRET, m_login_password_support_enabled = true } }
  t.seed{ users = { { id = "@alice:example.org" } } }
  t.equal(t.call("auth_checkers", "alice", "m.login.password", { password = token("@alice:example.org") }), "@alice:example.org")
end)

t.test("a missing secret is a config error", function()
  t.load{ file = "shared_secret_auth.lua", config = {} }
  t.raises(t.start, "shared_secret is required")
end)
