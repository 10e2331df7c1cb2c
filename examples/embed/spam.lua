-- spam: the module the embedding example loads. It refuses messages from
-- listed users and messages with banned words, counts the messages the
-- server accepted, and serves two small web resources; one uses the host's
-- engine.TokenAuthenticator (get_user_by_req) and engine.ProfileGetter
-- (get_profile_for_user) capabilities.
local api = require("module_api")

local M = {}

function M.parse_config(config)
  if type(config.evil_users) ~= "table" then
    error(api.ConfigError("evil_users must be a list of user IDs"))
  end
  config.banned_words = config.banned_words or {}
  return config
end

function M.new(config, api)
  local evil = {}
  for _, user in ipairs(config.evil_users) do evil[user] = true end

  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      if evil[event.sender] then return api.Codes.FORBIDDEN end
      local body = event.content.body
      if type(body) == "string" then
        for _, word in ipairs(config.banned_words) do
          if body:lower():find(word, 1, true) then
            return api.Codes.FORBIDDEN, { reason = "banned word", word = word }
          end
        end
      end
      return api.NOT_SPAM
    end,
  }

  -- Told about every message the server accepted; the server does not
  -- wait for it (engine.FireOnNewEvent).
  local accepted = 0
  api.register_third_party_rules_callbacks{
    on_new_event = function(event, state_events)
      if event.type == "m.room.message" then accepted = accepted + 1 end
    end,
  }

  -- GET /_synapse/client/embed/stats: what on_new_event counted.
  api.register_web_resource("/_synapse/client/embed/stats", function(request)
    return { json = { accepted = accepted } }
  end)

  -- GET /_synapse/client/embed/whoami: who the access token belongs to.
  api.register_web_resource("/_synapse/client/embed/whoami", {
    GET = function(request)
      local requester = api.get_user_by_req(request)          -- 401 without a valid token
      local profile = api.get_profile_for_user(requester.user_id)
      return { json = {
        user_id = requester.user_id,
        displayname = profile and profile.display_name,
        evil = evil[requester.user_id] == true,
      } }
    end,
  })
end

return M
