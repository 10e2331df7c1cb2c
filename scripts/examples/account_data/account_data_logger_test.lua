-- Tests of account_data_logger.lua.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

local function changes()
  local out = {}
  for _, r in ipairs(t.logs()) do
    if r.msg == "account data changed" then out[#out + 1] = r end
  end
  return out
end

t.test("changes are logged without their content", function()
  t.call("on_account_data_updated", "@alice:example.org", nil, "m.ignored_user_list",
    { ignored_users = { ["@spam:example.org"] = {} } })
  local logged = changes()
  t.equal(#logged, 1)
  t.equal(logged[1].user_id, "@alice:example.org")
  t.equal(logged[1].room_id, "(global)")
  t.equal(logged[1].type, "m.ignored_user_list")
  t.equal(logged[1].deleted, "false")
  t.equal(logged[1].content, nil, "content is private")
end)

t.test("an empty content is a deletion", function()
  t.call("on_account_data_updated", "@alice:example.org", "!r:example.org", "m.tag", {})
  t.equal(changes()[1].deleted, "true")
end)

t.test("ignored types are not logged", function()
  t.call("on_account_data_updated", "@alice:example.org", "!r:example.org", "m.fully_read", { event_id = "$e" })
  t.equal(#changes(), 0)
end)

t.test("every report_every updates the counts are logged", function()
  for i = 1, 50 do
    t.call("on_account_data_updated", "@alice:example.org", nil, "m.direct", { n = i })
  end
  local last = t.logs()[#t.logs()]
  t.equal(last.msg, "account data updates so far")
  t.equal(last.total, "50")
end)
