package stdlib

import "testing"

func TestBase64(t *testing.T) {
	runLuaCases(t, []luaCase{
		{name: "std", code: `
			local b64 = require("base64")
			assert(b64.encode("hello") == "aGVsbG8=")
			assert(b64.encode("hello", false) == "aGVsbG8")
			assert(b64.decode("aGVsbG8=") == "hello")
			assert(b64.decode("aGVsbG8") == "hello")
			assert(b64.encode("") == "" and b64.decode("") == "")`},
		{name: "url", code: `
			local b64 = require("base64")
			local raw = "\251\255\254"
			assert(b64.url_encode(raw) == "-__-")
			assert(b64.url_encode("hi") == "aGk")
			assert(b64.url_encode("hi", true) == "aGk=")
			assert(b64.url_decode("aGk") == "hi")
			assert(b64.url_decode("aGk=") == "hi")
			assert(b64.url_decode("-__-") == raw)`},
		{name: "binary round trip", code: `
			local b64 = require("base64")
			local s = ""
			for i = 0, 255 do s = s .. string.char(i) end
			assert(b64.decode(b64.encode(s)) == s)
			assert(b64.url_decode(b64.url_encode(s)) == s)`},
		{name: "malformed", code: `require("base64").decode("aGV*bG8")`, wantErr: `base64.decode: malformed input at byte offset 3 ("*")`},
		{name: "malformed url alphabet in std", code: `require("base64").decode("-__-")`, wantErr: "malformed input at byte offset 0"},
		{name: "malformed std alphabet in url", code: `require("base64").url_decode("+//+")`, wantErr: "base64.url_decode: malformed input at byte offset 0"},
		{name: "truncated", code: `require("base64").decode("a")`, wantErr: "malformed input at byte offset"},
		{name: "bad padding", code: `require("base64").decode("aGk==")`, wantErr: "malformed input at byte offset"},
	})
}
