local M = {}
function M.new(config, api)
  api.store.sett("k", 1)
end
return M
