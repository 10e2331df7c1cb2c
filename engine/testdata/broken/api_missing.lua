local M = {}
function M.new(config, api)
  local d = api.make_deferred_yieldable(nil)
end
return M
