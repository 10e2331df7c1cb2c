local api = require("module_api")
local M = {}
function M.parse_config(config)
  if config.answer ~= 42 then error(api.ConfigError("answer must be 42")) end
  return config
end
function M.new(config, api)
  api.register_account_validity_callbacks{
    is_user_expired = function(user_id)
      if user_id == "@boom:example.org" then error("kaboom") end
      return true
    end,
  }
end
return M
