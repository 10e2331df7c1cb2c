local M = {}
local t = nil
M.limit = t.limit
return M
