local M = {}
function M.new(config, api)
  if config.x then
    return 1 +
  end
end
return M
