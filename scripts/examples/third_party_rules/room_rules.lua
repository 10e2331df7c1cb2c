-- room_rules: house rules for the rooms of this server, enforced with
-- third-party rules callbacks. It combines what Synapse's own examples and
-- modules do with these callbacks:
--   * announcement rooms (read-only rooms): only listed users may post
--     messages there; other senders' messages are refused;
--   * word replacement (Synapse's EventCensorer example): listed words in a
--     message body are replaced, so the event is rewritten instead of refused;
--   * the room directory: only listed rooms may be made public
--     (check_visibility_can_be_modified);
--   * third-party invites go only to email addresses on listed domains
--     (as the old RoomAccessRules / domain rule checker modules did);
--   * rooms that non-admins create stay on this server (m.federate = false),
--     and only server admins may create rooms published to the directory.
--
-- Config (every key optional):
--   announcement_rooms: { "!room:server": ["@allowed:server", ...] }
--   replacements:       { word = "replacement" }   (case-insensitive, whole words)
--   publishable_rooms:  ["!room:server", ...]
--   invite_email_domains: ["example.org", ...]   (absent = any domain)
--   local_only_rooms:   true

local api = require("module_api")
local re = require("re")
local log = require("log")

local M = {}

local function is_list_of_strings(v)
  if type(v) ~= "table" then return false end
  for k, s in pairs(v) do
    if type(k) ~= "number" or type(s) ~= "string" then return false end
  end
  return true
end

local function set_of(list)
  local set = {}
  for _, v in ipairs(list or {}) do set[v] = true end
  return set
end

function M.parse_config(config)
  local rooms = config.announcement_rooms or {}
  if type(rooms) ~= "table" then
    error(api.ConfigError("announcement_rooms must map room IDs to lists of user IDs"))
  end
  local announcement = {}
  for room_id, senders in pairs(rooms) do
    if type(room_id) ~= "string" or room_id:sub(1, 1) ~= "!" then
      error(api.ConfigError("announcement_rooms: " .. tostring(room_id) .. " is not a room ID (!room:server)"))
    end
    if not is_list_of_strings(senders) then
      error(api.ConfigError("announcement_rooms[" .. room_id .. "] must be a list of user IDs"))
    end
    announcement[room_id] = set_of(senders)
  end

  local replacements = {}
  for word, repl in pairs(config.replacements or {}) do
    if type(word) ~= "string" or type(repl) ~= "string" or word == "" then
      error(api.ConfigError("replacements must map words to their replacements"))
    end
    replacements[#replacements + 1] = {
      pattern = [[(?i)\b]] .. re.quote(word) .. [[\b]],
      with = repl,
    }
  end
  -- pairs() has no order: sort so that the result does not depend on it.
  table.sort(replacements, function(a, b) return a.pattern < b.pattern end)

  for _, key in ipairs({ "publishable_rooms", "invite_email_domains" }) do
    if config[key] ~= nil and not is_list_of_strings(config[key]) then
      error(api.ConfigError(key .. " must be a list of strings"))
    end
  end
  local domains = nil
  if config.invite_email_domains then
    domains = {}
    for _, d in ipairs(config.invite_email_domains) do domains[d:lower()] = true end
  end

  return {
    announcement = announcement,
    replacements = replacements,
    publishable = set_of(config.publishable_rooms),
    invite_domains = domains,
    local_only_rooms = config.local_only_rooms == true,
  }
end

-- censor returns body with every configured word replaced, and whether
-- anything changed.
local function censor(replacements, body)
  local changed = false
  for _, r in ipairs(replacements) do
    local n
    body, n = re.gsub(r.pattern, body, function() return r.with end)
    if n > 0 then changed = true end
  end
  return body, changed
end

function M.new(config, api)
  api.register_third_party_rules_callbacks{
    check_event_allowed = function(event, state_events)
      -- Announcement rooms: state events (joins, name changes...) follow
      -- the room's power levels; messages only from the listed senders.
      local senders = config.announcement[event.room_id]
      if senders and event.state_key == nil and not senders[event.sender] then
        log.info("refused a message in an announcement room", { room_id = event.room_id, sender = event.sender })
        return false
      end

      local body = event.content.body
      if event.type == "m.room.message" and type(body) == "string" then
        local new_body, changed = censor(config.replacements, body)
        if changed then
          local copy = event:get_dict()
          copy.content.body = new_body
          -- The HTML version would still show the words: drop it.
          copy.content.format = nil
          copy.content.formatted_body = nil
          return true, copy
        end
      end
      return true
    end,

    check_visibility_can_be_modified = function(room_id, state_events, new_visibility)
      if new_visibility ~= "public" then return true end
      return config.publishable[room_id] == true
    end,

    check_threepid_can_be_invited = function(medium, address, state_events)
      if config.invite_domains == nil then return true end
      if medium ~= "email" then return false end
      local domain = address:match("@([^@]+)$")
      return domain ~= nil and config.invite_domains[domain:lower()] == true
    end,

    on_create_room = function(requester, request_content, is_requester_admin)
      if is_requester_admin then return end
      if request_content.visibility == "public" then
        error(api.SynapseError(403, "Only server admins may create rooms in the public directory", api.Codes.FORBIDDEN))
      end
      if config.local_only_rooms then
        request_content.creation_content = request_content.creation_content or {}
        request_content.creation_content["m.federate"] = false
      end
    end,
  }
end

return M
