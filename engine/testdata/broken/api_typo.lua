local M = {}
function M.new(config, api)
  api.register_spam_checker_callback{
    check_event_for_spam = function(event) return api.NOT_SPAM end,
  }
end
return M
