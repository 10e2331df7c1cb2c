-- expiry_list: account validity from a list, for servers whose accounts
-- belong to an organisation (in the spirit of Synapse's own account
-- validity and of matrix-org/synapse-email-account-validity, without the
-- renewal emails).
--   * users in `expired_users` are locked out (Synapse answers their
--     requests with 403 ORG_MATRIX_EXPIRED_ACCOUNT);
--   * users in `exempt_users` never expire;
--   * with `validity_days`, accounts registered while the module runs
--     expire that many days after registration, and every login is logged;
--   * for anyone else the module has no opinion (nil), so other modules or
--     the homeserver's own account validity decide.
--
-- Config:
--   expired_users: ["@former:example.org", ...]
--   exempt_users:  ["@admin:example.org", ...]
--   validity_days: 365        (optional)

local api = require("module_api")
local log = require("log")

local M = {}

local DAY_MS = 24 * 60 * 60 * 1000

local function user_set(config, key)
  local list = config[key] or {}
  if type(list) ~= "table" then
    error(api.ConfigError(key .. " must be a list of user IDs"))
  end
  local set = {}
  for _, user_id in ipairs(list) do
    if type(user_id) ~= "string" or not user_id:match("^@[^:]+:.+$") then
      error(api.ConfigError(key .. ": " .. tostring(user_id) .. " is not a user ID (@user:server)"))
    end
    set[user_id] = true
  end
  return set
end

function M.parse_config(config)
  local days = config.validity_days
  if days ~= nil and (type(days) ~= "number" or days <= 0) then
    error(api.ConfigError("validity_days must be a positive number of days"))
  end
  return {
    expired = user_set(config, "expired_users"),
    exempt = user_set(config, "exempt_users"),
    validity_ms = days and days * DAY_MS or nil,
  }
end

function M.new(config, api)
  -- When each user registered, for validity_days. A real deployment would
  -- keep this in api.store so that it survives restarts.
  local registered_at = {}

  api.register_account_validity_callbacks{
    is_user_expired = function(user_id)
      if config.exempt[user_id] then return false end
      if config.expired[user_id] then return true end
      local since = registered_at[user_id]
      if since and config.validity_ms then
        return api.get_current_time_msec() - since > config.validity_ms
      end
      return nil -- no opinion: let the next module or the homeserver decide
    end,

    on_user_registration = function(user_id)
      registered_at[user_id] = api.get_current_time_msec()
      log.info("new account", { user_id = user_id })
    end,

    on_user_login = function(user_id, auth_provider_type, auth_provider_id)
      log.info("login", { user_id = user_id, auth_provider_type = auth_provider_type or "",
        auth_provider_id = auth_provider_id or "" })
    end,
  }
end

return M
