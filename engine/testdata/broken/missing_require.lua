local helpers = require("helpers_that_do_not_exist")
return { new = function() end }
