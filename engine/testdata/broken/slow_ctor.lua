local M = {}
function M.new(config, api)
  while true do end
end
return M
