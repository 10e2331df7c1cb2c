-- list_spam: a list-based spam checker, the Lua port of the classic
-- Synapse example. Events from listed users, or containing a banned word,
-- are rejected; everything else is allowed.
local api = require("module_api")

local M = {}

-- parse_config checks the raw config before the module is built; an error
-- here names the config file and line of this module's `config:`.
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
      if evil[event.sender] then
        return api.Codes.FORBIDDEN
      end
      local body = event.content.body
      if type(body) == "string" then
        local lower = body:lower()
        for _, word in ipairs(config.banned_words) do
          if lower:find(word:lower(), 1, true) then
            return api.Codes.FORBIDDEN, { reason = "banned word", word = word }
          end
        end
      end
      return api.NOT_SPAM
    end,

    user_may_invite = function(inviter, invitee, room_id)
      if evil[inviter] then return api.Codes.FORBIDDEN end
      return api.NOT_SPAM
    end,
  }
end

return M
