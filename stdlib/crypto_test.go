package stdlib

import "testing"

func TestCrypto(t *testing.T) {
	runLuaCases(t, []luaCase{
		{name: "digests", code: `
			local crypto = require("crypto")
			assert(crypto.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
			assert(crypto.sha1("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d")
			assert(crypto.md5("abc") == "900150983cd24fb0d6963f7d28e17f72")
			assert(crypto.sha512("abc") == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")`},
		{name: "hmac", code: `
			local crypto = require("crypto")
			local msg = "The quick brown fox jumps over the lazy dog"
			assert(crypto.hmac_sha256("key", msg) == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
			assert(crypto.hmac_sha1("key", msg) == "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")
			assert(crypto.hmac_sha512("key", msg) == "b42af09057bac1e2d41708e48a902e09b5ff7f12ab428a4fe86653c73dd248fb82f948a549f7b791a5b41915ee4d1ec3935357e4e2317250d0372afa2ebeeb3a")`},
		{name: "random", code: `
			local crypto = require("crypto")
			local b = crypto.random_bytes(32)
			assert(#b == 32)
			assert(crypto.random_bytes(32) ~= b)
			assert(#crypto.random_bytes(0) == 0)
			local h = crypto.random_hex(16)
			assert(#h == 32 and h:match("^[0-9a-f]+$"))`},
		{name: "random cap", code: `require("crypto").random_bytes(2 * 1024 * 1024)`, wantErr: "crypto.random_bytes: n must be a whole number of bytes from 0 to 1048576 (1 MiB), got 2097152"},
		{name: "random negative", code: `require("crypto").random_hex(-1)`, wantErr: "got -1"},
		{name: "random huge", code: `require("crypto").random_bytes(1e300)`, wantErr: "1 MiB"},
		{name: "random type", code: `require("crypto").random_bytes("x")`, wantErr: "bad argument #1"},
		{name: "compare", code: `
			local crypto = require("crypto")
			assert(crypto.constant_time_compare("abc", "abc") == true)
			assert(crypto.constant_time_compare("abc", "abd") == false)
			assert(crypto.constant_time_compare("abc", "ab") == false)
			assert(crypto.constant_time_compare("", "") == true)`},
		{name: "hex", code: `
			local crypto = require("crypto")
			assert(crypto.to_hex("\0\255") == "00ff")
			assert(crypto.from_hex("00ff") == "\0\255")
			local v, err = crypto.from_hex("zz")
			assert(v == nil and err:find("invalid byte"), err)`},
		{name: "arg check", code: `require("crypto").sha256()`, wantErr: "bad argument #1"},
	})
}
