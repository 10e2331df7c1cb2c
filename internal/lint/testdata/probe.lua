-- Describes the module_api table the engine gives a constructor, as
-- lint.TableFields would (plain or guarded tables two levels deep), and serves the
-- description at /_synapse/client/lint_probe for env_test.go.
local M = {}

local function describe(t, depth, open)
  local out = {}
  for k, v in pairs(t) do
    if type(k) == "string" then
      local mt = getmetatable(v)
      -- A guard metatable only makes a missing key raise (luahost's api
      -- tables): the keys are still all the table answers to.
      local plain = mt == nil or (type(mt) == "table" and rawget(mt, "__luahost_guard") == true)
      if type(v) == "table" and depth > 1 and plain and not open[v] then
        open[v] = true
        out[k] = describe(v, depth - 1, open)
        open[v] = nil
      else
        out[k] = false
      end
    end
  end
  return out
end

function M.new(config, api)
  local described = describe(api, 2, { [api] = true })
  api.register_web_resource("/_synapse/client/lint_probe", function(request)
    return { json = described }
  end)
end

return M
