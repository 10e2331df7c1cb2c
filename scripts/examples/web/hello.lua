-- hello: the smallest web resource. GET /_synapse/client/hello answers a
-- greeting; /_synapse/client/hello/<name> greets <name> (prefix routing:
-- the part below the registered path arrives as request.subpath).
local M = {}

function M.new(config, api)
  local greeting = config.greeting or "Hello"

  api.register_web_resource("/_synapse/client/hello", {
    GET = function(request)
      local name = request.subpath:match("^/([^/]+)$") or request.query.name or "world"
      return { status = 200, json = { message = greeting .. ", " .. name .. "!" } }
    end,
  })
end

return M
