-- notes_api: a small authenticated JSON API, the shape of many Synapse
-- module resources. Every request needs an access token
-- (Authorization: Bearer ...); each user keeps their own notes.
--
--   GET    /_synapse/client/notes          list my notes
--   POST   /_synapse/client/notes          {"text": "..."} -> 201 {"id": n}
--   GET    /_synapse/client/notes/<id>     one note
--   DELETE /_synapse/client/notes/<id>     delete it
--   POST   /_synapse/client/notes/echo     echo a JSON body back (no token)
local api = require("module_api")

local M = {}

function M.parse_config(config)
  config.max_length = config.max_length or 1000
  if type(config.max_length) ~= "number" or config.max_length < 1 then
    error(api.ConfigError("max_length must be a positive number"))
  end
  return config
end

function M.new(config, api)
  -- In-memory notes per user: a demo. Use api.store to keep them.
  local notes, next_id = {}, 1

  local function mine(request)
    local requester = api.get_user_by_req(request)   -- 401 without a valid token
    notes[requester.user_id] = notes[requester.user_id] or {}
    return notes[requester.user_id], requester
  end

  local function note_id(request)
    local id = tonumber(request.subpath:match("^/(%d+)$"))
    if not id then
      error(api.SynapseError(404, "No such note", api.Codes.NOT_FOUND))
    end
    return id
  end

  api.register_web_resource("/_synapse/client/notes/echo", {
    POST = function(request)
      return { status = 200, json = { echo = request:json(), length = #request.body } }
    end,
  })

  api.register_web_resource("/_synapse/client/notes", {
    GET = function(request)
      local list = mine(request)
      if request.subpath == "" or request.subpath == "/" then
        local out = api.array()
        for id, text in pairs(list) do out[#out + 1] = { id = id, text = text } end
        table.sort(out, function(a, b) return a.id < b.id end)
        return { json = { notes = out } }
      end
      local id = note_id(request)
      if not list[id] then error(api.SynapseError(404, "No such note", api.Codes.NOT_FOUND)) end
      return { json = { id = id, text = list[id] } }
    end,

    POST = function(request)
      local list = mine(request)
      local body = request:json()                  -- malformed JSON -> 400 M_NOT_JSON
      if type(body.text) ~= "string" or body.text == "" then
        error(api.SynapseError(400, "text must be a non-empty string", api.Codes.BAD_JSON))
      end
      if #body.text > config.max_length then
        error(api.SynapseError(400, "note too long", api.Codes.TOO_LARGE, { max_length = config.max_length }))
      end
      local id = next_id
      next_id = next_id + 1
      list[id] = body.text
      return { status = 201, json = { id = id } }
    end,

    DELETE = function(request)
      local list = mine(request)
      local id = note_id(request)
      list[id] = nil
      return { json = {} }
    end,
  })
end

return M
