-- The module run.sh loads into Dendrite: a spam check, an invite check and
-- two web resources that use the Host run.sh's glue gives the engine.
local api = require("module_api")

local M = {}

function M.parse_config(config)
  if type(config.banned_word) ~= "string" or config.banned_word == "" then
    error(api.ConfigError("banned_word must be a non-empty string"))
  end
  return config
end

function M.new(config, api)
  local refused = {}
  for _, user in ipairs(config.refused_invitees or {}) do refused[user] = true end

  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      local word = config.banned_word -- run.sh's reload test edits this line
      local body = event.content.body
      if type(body) == "string" and body:find(word, 1, true) then
        return api.Codes.FORBIDDEN, { reason = "banned word", word = word }
      end
      return api.NOT_SPAM
    end,
    user_may_invite = function(inviter, invitee, room_id)
      if refused[invitee] then return api.Codes.FORBIDDEN end
      return api.NOT_SPAM
    end,
  }

  -- GET /_synapse/client/moderation/whoami[?room_id=...]: the caller's user info,
  -- profile and, given a room, its name and the caller's membership.
  api.register_web_resource("/_synapse/client/moderation/whoami", function(request)
    local me = api.get_user_by_req(request)
    local info = api.get_userinfo_by_id(me.user_id)
    local profile = api.get_profile_for_user(me.user_id)
    local out = { user_id = me.user_id, device_id = me.device_id, admin = info.is_admin,
                  displayname = profile and profile.display_name, banned_word = config.banned_word }
    if request.query.room_id then
      local state = api.get_room_state(request.query.room_id, { {"m.room.member", me.user_id}, {"m.room.name", ""} })
      if state == nil then return { status = 404, json = { errcode = "M_NOT_FOUND", error = "no such room" } } end
      local member = state["m.room.member"] and state["m.room.member"][me.user_id]
      out.membership = member and member.content.membership
      out.room_name = state["m.room.name"] and state["m.room.name"][""].content.name
    end
    return { json = out }
  end)

  -- POST /_synapse/client/moderation/notice {"room_id": ...}: the caller's
  -- client sends nothing; the module posts a notice into the room as the caller.
  api.register_web_resource("/_synapse/client/moderation/notice", {
    POST = function(request)
      local me = api.get_user_by_req(request)
      local body = request:json()
      local ev = api.create_and_send_event_into_room{
        type = "m.room.message", room_id = body.room_id, sender = me.user_id,
        content = { msgtype = "m.notice", body = "moderation notice for " .. me.user_id },
      }
      return { json = { event_id = ev.event_id } }
    end,
  })
end

return M
