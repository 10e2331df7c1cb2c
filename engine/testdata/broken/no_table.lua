-- forgot `return M`
local M = {}
function M.new(config, api) end
