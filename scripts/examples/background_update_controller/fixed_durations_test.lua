-- Tests of fixed_durations.lua.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

t.test("batches have the configured target duration", function()
  t.equal(t.call("on_update", "populate_stats_process_rooms", "main", false), 500)
  t.equal(t.call("on_update", "event_search_postgres_gin", "main", false), 50)
end)

t.test("batch sizes come from the config", function()
  t.equal(t.call("default_batch_size", "populate_stats_process_rooms", "main"), 200)
  t.equal(t.call("min_batch_size", "populate_stats_process_rooms", "main"), 20)
end)

t.test("the end of a batch is logged", function()
  t.call("on_update", "populate_stats_process_rooms", "main", true)
  local last = t.logs()[#t.logs()]
  t.equal(last.msg, "background update batch done")
  t.equal(last.update, "populate_stats_process_rooms")
  t.equal(last.target_ms, "500")
end)

t.test("a batch size below 1 is a config error", function()
  t.load{ file = "fixed_durations.lua", config = { min_batch_size = 0 } }
  t.raises(t.start, "min_batch_size must be a whole number of at least 1")
end)
