package stdlib

import "testing"

func TestTime(t *testing.T) {
	runLuaCases(t, []luaCase{
		{name: "now", code: `
			local time = require("time")
			local ms, s = time.now_ms(), time.now()
			assert(ms == math.floor(ms) and ms > 1.6e12)
			assert(math.abs(s * 1000 - ms) < 5000)`},
		{name: "format", code: `
			local time = require("time")
			assert(time.format(1700000000123) == "2023-11-14T22:13:20Z")
			assert(time.format(1700000000123, "rfc3339ms") == "2023-11-14T22:13:20.123Z")
			assert(time.format(1700000000123, "rfc1123") == "Tue, 14 Nov 2023 22:13:20 GMT")
			assert(time.format(1700000000123, "date") == "2023-11-14")
			assert(time.format(1700000000123, "RFC3339") == "2023-11-14T22:13:20Z")
			assert(time.format(0, "2006/01/02 15h04") == "1970/01/01 00h00")`},
		{name: "parse", code: `
			local time = require("time")
			assert(time.parse("2023-11-14T22:13:20Z") == 1700000000000)
			assert(time.parse("2023-11-14T22:13:20.123Z") == 1700000000123)
			assert(time.parse("2023-11-15T00:13:20+02:00") == 1700000000000)
			assert(time.parse("Tue, 14 Nov 2023 22:13:20 GMT", "rfc1123") == 1700000000000)
			assert(time.parse("2023-11-14", "date") == 1699920000000)
			assert(time.parse("14/11/2023", "02/01/2006") == 1699920000000)
			local v, err = time.parse("yesterday")
			assert(v == nil and err:find("^time.parse: "), err)`},
		{name: "round trip", code: `
			local time = require("time")
			local now = time.now_ms()
			assert(time.parse(time.format(now, "rfc3339ms"), "rfc3339ms") == now)`},
		{name: "format nan", code: `require("time").format(0/0)`, wantErr: "bad argument #1"},
	})
}
