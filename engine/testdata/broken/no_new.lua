local M = {}
function M.init(config, api) end
return M
