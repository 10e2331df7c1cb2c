-- account_data_logger: an audit trail of account data changes, after the
-- example in Synapse's docs (docs/modules/account_data_callbacks.md),
-- which posts each change into an audit room; this one writes it to the
-- log instead, and counts the updates per data type. Every
-- `report_every` updates it logs the counts so far.
--
-- Content is not logged unless `log_content: true`: account data holds
-- private things (push rules, ignored users, secret storage keys).
--
-- Config (every key optional):
--   ignore_types: ["m.fully_read", ...]   types not worth logging
--   log_content: false
--   report_every: 100

local api = require("module_api")
local log = require("log")
local json = require("json")

local M = {}

function M.parse_config(config)
  local ignore = {}
  for _, t in ipairs(config.ignore_types or {}) do
    if type(t) ~= "string" then
      error(api.ConfigError("ignore_types must be a list of account data types"))
    end
    ignore[t] = true
  end
  local every = config.report_every or 100
  if type(every) ~= "number" or every < 1 then
    error(api.ConfigError("report_every must be a number of updates, at least 1"))
  end
  return { ignore = ignore, log_content = config.log_content == true, report_every = every }
end

function M.new(config, api)
  local counts, total = {}, 0

  api.register_account_data_callbacks{
    on_account_data_updated = function(user_id, room_id, account_data_type, content)
      if config.ignore[account_data_type] then return end
      total = total + 1
      counts[account_data_type] = (counts[account_data_type] or 0) + 1

      -- Deleting account data is writing an empty object.
      local deleted = next(content) == nil
      local fields = {
        user_id = user_id,
        room_id = room_id or "(global)",
        type = account_data_type,
        deleted = deleted,
      }
      if config.log_content and not deleted then
        fields.content = json.encode(content)
      end
      log.info("account data changed", fields)

      if total % config.report_every == 0 then
        log.info("account data updates so far", { total = total, by_type = counts })
      end
    end,
  }
end

return M
