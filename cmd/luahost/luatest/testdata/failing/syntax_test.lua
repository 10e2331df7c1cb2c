local t = require("luahost.test")
t.test("broken", function()
  if then
end)
