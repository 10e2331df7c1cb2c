-- fixed_durations: run the homeserver's database background updates in
-- batches of a fixed target duration, so that a big migration does not
-- slow the server down at busy times. It answers with fixed numbers
-- taken from the config, and logs how long each batch really took.
--
-- Only the first module that registers a background update controller
-- is used; put this one first if several would.
--
-- Config (every key optional):
--   duration_ms: 100            target duration of a batch
--   durations_ms: { update_name = ms }   per-update targets
--   default_batch_size: 100     items in the first batch
--   min_batch_size: 100         the smallest batch (at least 1)

local api = require("module_api")
local log = require("log")

local M = {}

local function positive(config, key, default)
  local v = config[key]
  if v == nil then return default end
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
    error(api.ConfigError(key .. " must be a whole number of at least 1"))
  end
  return v
end

function M.parse_config(config)
  local per_update = config.durations_ms or {}
  if type(per_update) ~= "table" then
    error(api.ConfigError("durations_ms must map update names to durations in ms"))
  end
  for name, ms in pairs(per_update) do
    if type(name) ~= "string" or type(ms) ~= "number" or ms <= 0 then
      error(api.ConfigError("durations_ms: " .. tostring(name) .. " must be a positive duration in ms"))
    end
  end
  return {
    duration_ms = positive(config, "duration_ms", 100),
    durations_ms = per_update,
    default_batch_size = positive(config, "default_batch_size", 100),
    min_batch_size = positive(config, "min_batch_size", 100),
  }
end

function M.new(config, api)
  api.register_background_update_controller_callbacks{
    on_update = function(update_name, database_name, one_shot)
      local target = config.durations_ms[update_name] or config.duration_ms
      local started = api.get_current_time_msec()
      -- The second return runs when the batch ends (Synapse's context
      -- manager exit).
      return target, function()
        log.info("background update batch done", {
          update = update_name, database = database_name, one_shot = one_shot,
          target_ms = target, took_ms = api.get_current_time_msec() - started,
        })
      end
    end,

    default_batch_size = function(update_name, database_name)
      return config.default_batch_size
    end,

    min_batch_size = function(update_name, database_name)
      return config.min_batch_size
    end,
  }
end

return M
