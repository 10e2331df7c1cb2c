-- bot_marker: tell clients which messages come from bots, so they can show
-- them differently, by adding a field to the `unsigned` section of events
-- as they are sent to clients. Also marks the events of users on servers
-- this one federates with but does not trust, for moderation tools.
--
-- This runs for every event sent to every client: keep it cheap (set
-- look-ups only, no host calls).
--
-- Config:
--   bots: ["@github:example.org", ...]
--   bot_field: "org.example.bot"                (the unsigned key; default shown)
--   untrusted_servers: ["spam.example.net", ...]
--   untrusted_field: "org.example.untrusted_server"

local api = require("module_api")

local M = {}

local function set_of(config, key)
  local list = config[key] or {}
  if type(list) ~= "table" then
    error(api.ConfigError(key .. " must be a list"))
  end
  local set = {}
  for _, v in ipairs(list) do
    if type(v) ~= "string" then error(api.ConfigError(key .. " must be a list of strings")) end
    set[v] = true
  end
  return set
end

local function field_name(config, key, default)
  local v = config[key] or default
  if type(v) ~= "string" or not v:find("%.") then
    -- Unsigned keys that are not in the spec must be namespaced.
    error(api.ConfigError(key .. " must be a namespaced key such as " .. default))
  end
  return v
end

function M.parse_config(config)
  return {
    bots = set_of(config, "bots"),
    untrusted = set_of(config, "untrusted_servers"),
    bot_field = field_name(config, "bot_field", "org.example.bot"),
    untrusted_field = field_name(config, "untrusted_field", "org.example.untrusted_server"),
  }
end

function M.new(config, api)
  api.register_add_extra_fields_to_unsigned_client_event_callbacks{
    add_field_to_unsigned_callback = function(event)
      local fields = {}
      local sender = event.sender
      if config.bots[sender] then
        fields[config.bot_field] = true
      end
      local server = sender:match("^@[^:]*:(.+)$")
      if server and config.untrusted[server] then
        fields[config.untrusted_field] = server
      end
      return fields
    end,
  }
end

return M
