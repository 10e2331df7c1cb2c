local M = {}
function M.new(config, api)
  local f = io.open("/etc/passwd")
end
return M
