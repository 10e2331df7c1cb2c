local M = {}
function M.new(config, api)
  api.looping_background_call(function() end, 10)
  api.register_account_validity_callbacks{
    is_user_expired = function(user_id)
      while true do end
    end,
  }
end
return M
