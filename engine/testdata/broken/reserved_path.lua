local M = {}
function M.new(config, api)
  api.register_web_resource("/_matrix/client/v3/login", function(req) return {status = 200} end)
end
return M
