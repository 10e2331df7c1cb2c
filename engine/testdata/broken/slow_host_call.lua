local M = {}
function M.new(config, api)
  api.sleep(10)
end
return M
