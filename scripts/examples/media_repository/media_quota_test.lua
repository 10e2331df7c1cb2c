-- Tests of media_quota.lua.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

local MiB = 1024 * 1024

t.test("files up to max_upload_bytes are allowed", function()
  t.equal(t.call("is_user_allowed_to_upload_media_of_size", "@alice:example.org", 10 * MiB), true)
  t.equal(t.call("is_user_allowed_to_upload_media_of_size", "@alice:example.org", 10 * MiB + 1), false)
  t.equal(t.call("is_user_allowed_to_upload_media_of_size", "@archivist:example.org", 500 * MiB), true)
  t.equal(t.call("is_user_allowed_to_upload_media_of_size", "@guest-kiosk:example.org", 1), false)
end)

t.test("the media config tells each user their limit", function()
  t.same(t.call("get_media_config_for_user", "@alice:example.org"), { ["m.upload.size"] = 10 * MiB })
  t.same(t.call("get_media_config_for_user", "@guest-kiosk:example.org"), { ["m.upload.size"] = 0 })
end)

t.test("upload limits come longest period first; large uploaders have none", function()
  t.same(t.call("get_media_upload_limits_for_user", "@alice:example.org"), {
    { time_period_ms = 86400000, max_bytes = 500 * MiB },
    { time_period_ms = 3600000, max_bytes = 100 * MiB },
  })
  t.same(t.call("get_media_upload_limits_for_user", "@archivist:example.org"), {})
end)

t.test("a user over a quota is logged", function()
  t.call("on_media_upload_limit_exceeded", "@alice:example.org",
    { time_period_ms = 3600000, max_bytes = 100 * MiB }, 99 * MiB, 2 * MiB)
  local last = t.logs()[#t.logs()]
  t.equal(last.level, "WARN")
  t.equal(last.msg, "media upload quota reached")
  t.equal(last.period_hours, "1")
end)
