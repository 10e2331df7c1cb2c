local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{
    check_event_for_spamm = function(event) return api.NOT_SPAM end,
  }
end
return M
