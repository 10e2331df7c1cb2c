-- media_quota: per-user media limits. Most users may upload files up to
-- `max_upload_bytes` and `daily_bytes` a day (and `hourly_bytes` an hour);
-- users in `large_uploaders` (an archivist, a bridge) get
-- `large_max_upload_bytes` and no time-based quota; users in `no_uploads`
-- may not upload at all. Clients learn their own limit from the media
-- config endpoint (`m.upload.size`), and users who hit their quota are
-- logged, so an admin can follow up.
--
-- Config:
--   max_upload_bytes: 10485760
--   daily_bytes: 524288000
--   hourly_bytes: 104857600          (optional)
--   large_uploaders: ["@archivist:example.org"]
--   large_max_upload_bytes: 1073741824
--   no_uploads: ["@guest-kiosk:example.org"]

local api = require("module_api")
local log = require("log")

local M = {}

local HOUR_MS = 60 * 60 * 1000
local DAY_MS = 24 * HOUR_MS

local function bytes(config, key, required)
  local v = config[key]
  if v == nil and not required then return nil end
  if type(v) ~= "number" or v < 0 or v ~= math.floor(v) then
    error(api.ConfigError(key .. " must be a number of bytes"))
  end
  return v
end

local function user_set(config, key)
  local set = {}
  for _, u in ipairs(config[key] or {}) do
    if type(u) ~= "string" or u:sub(1, 1) ~= "@" then
      error(api.ConfigError(key .. " must be a list of user IDs"))
    end
    set[u] = true
  end
  return set
end

function M.parse_config(config)
  local c = {
    max_upload = bytes(config, "max_upload_bytes", true),
    daily = bytes(config, "daily_bytes", true),
    hourly = bytes(config, "hourly_bytes", false),
    large_uploaders = user_set(config, "large_uploaders"),
    large_max_upload = bytes(config, "large_max_upload_bytes", false),
    no_uploads = user_set(config, "no_uploads"),
  }
  if next(c.large_uploaders) ~= nil and c.large_max_upload == nil then
    error(api.ConfigError("large_uploaders needs large_max_upload_bytes"))
  end
  return c
end

function M.new(config, api)
  local function max_upload_for(user_id)
    if config.no_uploads[user_id] then return 0 end
    if config.large_uploaders[user_id] then return config.large_max_upload end
    return config.max_upload
  end

  api.register_media_repository_callbacks{
    get_media_config_for_user = function(user_id)
      return { ["m.upload.size"] = max_upload_for(user_id) }
    end,

    is_user_allowed_to_upload_media_of_size = function(user_id, size)
      return size <= max_upload_for(user_id)
    end,

    get_media_upload_limits_for_user = function(user_id)
      if config.large_uploaders[user_id] then
        return api.array() -- an empty list: no time-based limit at all
      end
      local limits = { { time_period_ms = DAY_MS, max_bytes = config.daily } }
      if config.hourly then
        table.insert(limits, { time_period_ms = HOUR_MS, max_bytes = config.hourly })
      end
      return limits
    end,

    on_media_upload_limit_exceeded = function(user_id, limit, sent_bytes, attempted_bytes)
      log.warn("media upload quota reached", {
        user_id = user_id,
        period_hours = limit.time_period_ms / HOUR_MS,
        max_bytes = limit.max_bytes,
        sent_bytes = sent_bytes,
        attempted_bytes = attempted_bytes,
      })
    end,
  }
end

return M
