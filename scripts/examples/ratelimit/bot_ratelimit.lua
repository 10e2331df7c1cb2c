-- bot_ratelimit: lift or change rate limits for trusted bots and bridges,
-- without the admin API's per-user override having to be set by hand for
-- each of them. Synapse asks for the limiters `rc_invites.per_room`,
-- `rc_invites.per_user` and `rc_invites.per_issuer`; an onboarding bot
-- that invites every new user into a set of rooms hits those quickly.
--
-- Config:
--   bots: ["@onboarding:example.org", ...]
--   override: { per_second = 0, burst_count = 0 }   (per_second 0 = no limit)
--   limiters:                                       (optional, per limiter)
--     rc_invites.per_issuer: { per_second = 5, burst_count = 50 }

local api = require("module_api")

local M = {}

local function check_override(v, what)
  if type(v) ~= "table" or type(v.per_second) ~= "number" or type(v.burst_count) ~= "number"
      or v.per_second < 0 or v.burst_count < 0 then
    error(api.ConfigError(what .. " must be { per_second = <number>, burst_count = <number> }"))
  end
  return { per_second = v.per_second, burst_count = v.burst_count }
end

function M.parse_config(config)
  local bots = {}
  for _, u in ipairs(config.bots or {}) do
    if type(u) ~= "string" or u:sub(1, 1) ~= "@" then
      error(api.ConfigError("bots must be a list of user IDs"))
    end
    bots[u] = true
  end
  local limiters = {}
  for name, v in pairs(config.limiters or {}) do
    limiters[name] = check_override(v, "limiters." .. tostring(name))
  end
  return {
    bots = bots,
    override = check_override(config.override or { per_second = 0, burst_count = 0 }, "override"),
    limiters = limiters,
  }
end

function M.new(config, api)
  api.register_ratelimit_callbacks{
    get_ratelimit_override_for_user = function(user_id, limiter_name)
      if not config.bots[user_id] then
        return nil -- the homeserver's own settings apply
      end
      return config.limiters[limiter_name] or config.override
    end,
  }
end

return M
