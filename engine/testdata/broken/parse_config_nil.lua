local M = {}
function M.parse_config(config)
  config.limit = config.limit or 10
end
function M.new(config, api)
  local limit = config.limit
end
return M
