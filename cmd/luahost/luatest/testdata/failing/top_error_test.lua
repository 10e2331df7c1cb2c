local t = require("luahost.test")
t.test("fine", function() end)
local x = nil
x.y = 1
