-- rate_limit: at most `max_messages` messages per sender in any fixed
-- window of `window_seconds`; the next ones are rejected with
-- M_LIMIT_EXCEEDED until the window ends. The counter lives in api.store
-- (docs/storage.md), so with the redis backend the limit holds across
-- every luahost instance, and with bolt it survives a restart.
--
-- Config:
--   max_messages: 5      (per window)
--   window_seconds: 60
--   exempt: ["@bot:example.org", ...]   (optional)

local api = require("module_api")
local log = require("log")

local M = {}

function M.parse_config(config)
  local max, window = config.max_messages or 5, config.window_seconds or 60
  if type(max) ~= "number" or max < 0 or max % 1 ~= 0 then
    error(api.ConfigError("max_messages must be a whole number >= 0"))
  end
  if type(window) ~= "number" or window <= 0 then
    error(api.ConfigError("window_seconds must be a positive number"))
  end
  local exempt = {}
  for _, u in ipairs(config.exempt or {}) do
    exempt[u] = true
  end
  return { max = max, window = window, exempt = exempt }
end

function M.new(config, api)
  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      if event.type ~= "m.room.message" or config.exempt[event.sender] then
        return api.NOT_SPAM
      end
      -- The first message of a window creates the counter with the
      -- window's expiry; later ones only count. One atomic call.
      local ok, n = pcall(api.store.incr, "messages:" .. event.sender, 1, config.window)
      if not ok then
        -- Storage is down: let messages through rather than block everyone.
        log.warn("store unavailable; allowing the message", { err = tostring(n) })
        return api.NOT_SPAM
      end
      if n > config.max then
        return api.Codes.LIMIT_EXCEEDED
      end
      return api.NOT_SPAM
    end,
  }
end

return M
