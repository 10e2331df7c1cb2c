-- shared_secret_auth: log in with a token derived from a secret shared with
-- another service, instead of a password. A port of Slavi Pantaleev's
-- matrix-synapse-shared-secret-auth
-- (https://github.com/devture/matrix-synapse-shared-secret-auth).
--
-- The token for a user is HMAC-SHA512(shared_secret, full_user_id) in lowercase
-- hex. A trusted service that knows the secret can mint it, for example in Lua:
--     crypto.hmac_sha512(shared_secret, "@alice:example.org")
-- or in a shell:
--     printf '%s' '@alice:example.org' | openssl dgst -sha512 -hmac "$SECRET"
-- and the client logs in with
--     {"type": "com.devture.shared_secret_auth",
--      "identifier": {"type": "m.id.user", "user": "alice"}, "token": "<hex>"}
--
-- Config (the upstream module's keys and defaults):
--   shared_secret: the secret (required); keep it out of the config with
--     `shared_secret: !file shared_secret.txt` or `${SHARED_SECRET}`
--   com_devture_shared_secret_auth_support_enabled: accept the
--     com.devture.shared_secret_auth login type (default true). Bridges doing
--     double puppeting over m.login.password often turn it off, as some
--     clients offer the extra login type in user-interactive auth.
--   m_login_password_support_enabled: also accept the token as the password
--     of an ordinary m.login.password login (default false), for clients
--     that only speak password logins.
-- With both login types turned off the module refuses to start, as upstream
-- does.

local api = require("module_api")
local crypto = require("crypto")
local log = require("log")

local M = {}

function M.parse_config(config)
  if type(config) ~= "table" then
    error(api.ConfigError("shared_secret is required"))
  end
  local secret = config.shared_secret
  if type(secret) ~= "string" or secret == "" then
    error(api.ConfigError("shared_secret is required"))
  end
  -- flag reads an optional boolean key.
  local function flag(key, default)
    local v = config[key]
    if v == nil then return default end
    if type(v) ~= "boolean" then
      error(api.ConfigError(key .. " must be true or false"))
    end
    return v
  end
  local parsed = {
    shared_secret = secret,
    com_devture_shared_secret_auth_support_enabled = flag("com_devture_shared_secret_auth_support_enabled", true),
    m_login_password_support_enabled = flag("m_login_password_support_enabled", false),
  }
  if not parsed.com_devture_shared_secret_auth_support_enabled and not parsed.m_login_password_support_enabled then
    error(api.ConfigError("at least one login type must be enabled: set com_devture_shared_secret_auth_support_enabled " ..
      "or m_login_password_support_enabled to true"))
  end
  return parsed
end

function M.new(config, api)
  local secret = config.shared_secret

  -- Returns the full user ID when token is the HMAC of it, nil otherwise.
  local function log_in_with_token(login_type, user, token)
    if type(user) ~= "string" or user == "" or type(token) ~= "string" then
      return nil
    end
    log.info("authenticating user", { user = user, login_type = login_type })

    -- `user` is whatever the client sent: a bare localpart or a full user ID.
    local user_id = user
    if user:sub(1, 1) ~= "@" then
      user_id = api.get_qualified_user_id(user)
    end

    local expected = crypto.hmac_sha512(secret, user_id)
    if not crypto.constant_time_compare(expected, token) then
      log.info("bad hmac value for user", { user_id = user_id })
      return nil
    end

    -- A valid token for an account that does not exist logs nobody in.
    if api.get_userinfo_by_id(user_id) == nil then
      log.info("refusing to authenticate missing user", { user_id = user_id })
      return nil
    end

    log.info("authenticated user", { user_id = user_id, login_type = login_type })
    return user_id
  end

  local auth_checkers = {}
  if config.com_devture_shared_secret_auth_support_enabled then
    auth_checkers["com.devture.shared_secret_auth"] = {
      fields = { "token" },
      check = function(user, login_type, login_dict)
        if login_type ~= "com.devture.shared_secret_auth" then return nil end
        return log_in_with_token(login_type, user, login_dict.token)
      end,
    }
  end
  if config.m_login_password_support_enabled then
    auth_checkers["m.login.password"] = {
      fields = { "password" },
      check = function(user, login_type, login_dict)
        if login_type ~= "m.login.password" then return nil end
        return log_in_with_token(login_type, user, login_dict.password)
      end,
    }
  end

  local enabled = {}
  for login_type in pairs(auth_checkers) do enabled[#enabled + 1] = login_type end
  table.sort(enabled)
  log.info("enabled login types", { login_types = enabled })

  api.register_password_auth_provider_callbacks{
    auth_checkers = auth_checkers,
  }
end

return M
