-- A module that uses every part of the world a test controls.
local log = require("log")
local time = require("time")
local M = {}

function M.new(config, api)
  local ticks = 0
  api.looping_background_call(function() ticks = ticks + 1 end, 1000)
  local probe_ok = pcall(require, "luahost.test")
  log.info("started", { probe_ok = probe_ok })

  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      local what = event.content.body
      if what == "webhook" then
        local verdict = api.http_client.post_json_get_json(config.webhook, { sender = event.sender })
        if verdict.spam then return api.Codes.FORBIDDEN, { reason = verdict.reason } end
      elseif what == "sleep" then
        api.sleep(30)
      elseif what == "announce" then
        api.create_and_send_event_into_room{ type = "m.room.message", room_id = event.room_id,
          sender = event.sender, content = { body = "announced" } }
        api.account_data_manager.put_global(event.sender, "org.example.seen", { at = api.get_current_time_msec() })
      elseif what == "remember" then
        api.store.set("last", event.sender, 60)
      elseif what == "recall" then
        local last = api.store.get("last")
        if last then return api.Codes.FORBIDDEN, { last = last } end
      end
      return api.NOT_SPAM
    end,

    user_may_join_room = function(user_id, room_id, is_invited)
      local state = api.get_room_state(room_id)
      local member = state and state["m.room.member"] and state["m.room.member"][user_id]
      local profile = api.get_profile_for_user(user_id)
      if member and member.content.membership == "ban" then return api.Codes.FORBIDDEN end
      if profile and profile.display_name == "Spammer" then return api.Codes.FORBIDDEN end
      return api.NOT_SPAM
    end,
  }

  api.register_web_resource("/_synapse/client/probe", function(request)
    local who = nil
    if request.headers.authorization then who = api.get_user_by_req(request).user_id end
    return { status = 200, json = { method = request.method, query = request.query, who = who,
      header = request.headers["x-probe"], ticks = ticks, now_ms = time.now_ms(), body = request.body } }
  end)
end
return M
