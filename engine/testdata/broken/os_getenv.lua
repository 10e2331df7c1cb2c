local M = {}
local home = os.getenv("HOME")
function M.new(config, api) end
return M
