local M = {}
function M.new(config, api)
  api.register_account_validity_callbacks{
    is_user_expired = function(user_id) return user_id == "@old:example.org" end,
  }
end
return M
