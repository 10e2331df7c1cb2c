-- route_presence: send presence to users who share no room with the
-- people they watch. A Lua port of the presence router in Synapse's docs
-- (docs/modules/presence_router_callbacks.md), with its
-- "users_who_should_receive_all_presence" option, plus explicit routes.
--   * users in `receive_all` (for example a monitoring bot or a reception
--     desk) get the presence of every user;
--   * `routes` maps a watcher to the users whose presence they get.
-- Watchers may be local or remote; remote ones only see it if their own
-- server routes it to them too.
--
-- Config:
--   receive_all: ["@presence-bot:example.org"]
--   routes:
--     "@alice:example.org": ["@bob:example.org", "@carol:other.org"]

local api = require("module_api")

local M = {}

local function check_users(list, what)
  if type(list) ~= "table" then
    error(api.ConfigError(what .. " must be a list of user IDs"))
  end
  for _, u in ipairs(list) do
    if type(u) ~= "string" or not u:match("^@[^:]+:.+$") then
      error(api.ConfigError(what .. ": " .. tostring(u) .. " is not a user ID (@user:server)"))
    end
  end
end

function M.parse_config(config)
  local receive_all = config.receive_all or {}
  check_users(receive_all, "receive_all")
  local routes = config.routes or {}
  if type(routes) ~= "table" then
    error(api.ConfigError("routes must map a watcher's user ID to a list of user IDs"))
  end
  -- watched_by[user] = { watcher, ... }: who gets the presence of `user`.
  local watched_by, watching = {}, {}
  for watcher, users in pairs(routes) do
    check_users({ watcher }, "routes")
    check_users(users, "routes[" .. watcher .. "]")
    watching[watcher] = users
    for _, u in ipairs(users) do
      watched_by[u] = watched_by[u] or {}
      table.insert(watched_by[u], watcher)
    end
  end
  local all = {}
  for _, u in ipairs(receive_all) do all[u] = true end
  return { receive_all = receive_all, all = all, watched_by = watched_by, watching = watching }
end

function M.new(config, api)
  api.register_presence_router_callbacks{
    -- Who should get these presence updates, on top of the users who
    -- share a room with their owners?
    get_users_for_states = function(state_updates)
      local out = {}
      local function send(to, state)
        out[to] = out[to] or {}
        table.insert(out[to], state)
      end
      for _, state in ipairs(state_updates) do
        for _, watcher in ipairs(config.receive_all) do
          if watcher ~= state.user_id then send(watcher, state) end
        end
        for _, watcher in ipairs(config.watched_by[state.user_id] or {}) do
          send(watcher, state)
        end
      end
      return out
    end,

    -- Whose presence may this (local) user see? Must agree with the above.
    get_interested_users = function(user_id)
      if config.all[user_id] then
        return api.PRESENCE_ALL_USERS
      end
      return config.watching[user_id] or api.array()
    end,
  }
end

return M
