-- bench: the Lua twins of bench/native's handlers (see docs/benchmarks.md).
--   GET  /_synapse/client/bench/hello  -> {"message":"Hello, world!"}
--   POST /_synapse/client/bench/echo   -> {"echo": <decoded body>, "length": <bytes>}
local M = {}

function M.new(config, api)
  api.register_web_resource("/_synapse/client/bench/hello", {
    GET = function(request)
      return { status = 200, json = { message = "Hello, world!" } }
    end,
  })

  api.register_web_resource("/_synapse/client/bench/echo", {
    POST = function(request)
      local body = request:json()
      return { status = 200, json = { echo = body, length = #request.body } }
    end,
  })
end

return M
