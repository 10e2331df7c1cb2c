local api = require("module_api")
local M = {}
function M.parse_config(config)
  if type(config.evil_users) ~= "table" then
    error(api.ConfigError("evil_users must be a list of user IDs"))
  end
  return config
end
function M.new(config, api) end
return M
