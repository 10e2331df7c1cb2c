local M = {}
function M.new(config, api)
  local ids = api.get_threepids_for_user("@alice:example.org")
end
return M
