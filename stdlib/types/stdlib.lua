---@meta
-- LuaLS (lua-language-server) definitions for luahost's standard library.
-- Add this folder to "workspace.library" in .luarc.json; `require("re")`
-- and friends then resolve to the classes below through the overloads of
-- require at the end of this file (module_api.lua and luahost_test.lua
-- beside it define module_api and the test API). Reference: docs/stdlib.md,
-- docs/editor.md.

---------------------------------------------------------------- json

---@class luahost.json
json = {}

---A sentinel for JSON null (the same value as api.null).
---@type userdata
json.null = nil

---Encodes a value as JSON text. Raises on functions, cycles, NaN/infinite numbers.
---@param value any
---@param options? {indent?: boolean}
---@return string
function json.encode(value, options) end

---Decodes JSON text; null becomes json.null. Raises naming the byte offset on bad input.
---@param s string
---@return any
function json.decode(s) end

---Marks t (or a new table) to encode as a JSON array even when empty.
---@generic T: table
---@param t? T
---@return T
function json.array(t) end

---Marks t (or a new table) to always encode as a JSON object.
---@generic T: table
---@param t? T
---@return T
function json.object(t) end

---------------------------------------------------------------- re

---@class luahost.re
re = {}

---Whether pattern (RE2 syntax) matches anywhere in s.
---@param pattern string
---@param s string
---@return boolean
function re.match(pattern, s) end

---The first match and its groups (false for a group that did not take part), or nil.
---@param pattern string
---@param s string
---@return string|nil whole
---@return string|false ... groups
function re.find(pattern, s) end

---The first match's named groups as a table, or nil.
---@param pattern string
---@param s string
---@return table<string, string>|nil
function re.find_named(pattern, s) end

---Every match (at most n): strings, or {whole, g1, ...} arrays when the pattern has groups.
---@param pattern string
---@param s string
---@param n? integer
---@return (string|(string|false)[])[]
function re.find_all(pattern, s, n) end

---Replaces matches; repl is a template ($1, ${name}), a function or a table.
---@param pattern string
---@param s string
---@param repl string|table|fun(whole: string, ...: string|false): string|false|nil
---@param n? integer
---@return string result
---@return integer count
function re.gsub(pattern, s, repl, n) end

---Splits s around the matches of pattern (at most n pieces). With
---options.captures, each piece is followed by the separator's capture
---groups (false for a group that did not take part), as Python's re.split.
---@param pattern string
---@param s string
---@param n? integer|{captures?: boolean, n?: integer}
---@param options? {captures?: boolean, n?: integer}
---@return (string|false)[]
function re.split(pattern, s, n, options) end

---Escapes all metacharacters of s.
---@param s string
---@return string
function re.quote(s) end

---Checks a pattern without raising.
---@param pattern string
---@return boolean ok
---@return string? reason
function re.valid(pattern) end

---------------------------------------------------------------- crypto

---@class luahost.crypto
crypto = {}

---@param s string
---@return string hex
function crypto.sha256(s) end

---@param s string
---@return string hex
function crypto.sha512(s) end

---@param s string
---@return string hex
function crypto.sha1(s) end

---@param s string
---@return string hex
function crypto.md5(s) end

---@param key string
---@param msg string
---@return string hex
function crypto.hmac_sha256(key, msg) end

---@param key string
---@param msg string
---@return string hex
function crypto.hmac_sha512(key, msg) end

---@param key string
---@param msg string
---@return string hex
function crypto.hmac_sha1(key, msg) end

---n secure random bytes (n at most 1 MiB).
---@param n integer
---@return string
function crypto.random_bytes(n) end

---n secure random bytes as 2n hex characters.
---@param n integer
---@return string
function crypto.random_hex(n) end

---Equality in time independent of where a and b differ.
---@param a string
---@param b string
---@return boolean
function crypto.constant_time_compare(a, b) end

---@param s string
---@return string hex
function crypto.to_hex(s) end

---@param hex string
---@return string|nil bytes
---@return string? err
function crypto.from_hex(hex) end

---------------------------------------------------------------- base64

---@class luahost.base64
base64 = {}

---Standard alphabet; padded unless pad is false.
---@param s string
---@param pad? boolean
---@return string
function base64.encode(s, pad) end

---Standard alphabet, padded or unpadded. Raises on malformed input.
---@param s string
---@return string
function base64.decode(s) end

---URL-safe alphabet; unpadded unless pad is true.
---@param s string
---@param pad? boolean
---@return string
function base64.url_encode(s, pad) end

---URL-safe alphabet, padded or unpadded. Raises on malformed input.
---@param s string
---@return string
function base64.url_decode(s) end

---------------------------------------------------------------- url

---@class luahost.url
url = {}

---@class luahost.url.parsed
---@field scheme string
---@field host string
---@field port integer?
---@field path string
---@field raw_query string
---@field query table<string, string>
---@field query_all table<string, string[]>
---@field fragment string
---@field user string?
---@field password string?
---@field opaque string?

---Escapes s as a query component.
---@param s string
---@return string
function url.escape(s) end

---@param s string
---@return string|nil
---@return string? err
function url.unescape(s) end

---Escapes s as one path segment.
---@param s string
---@return string
function url.path_escape(s) end

---@param s string
---@return string|nil
---@return string? err
function url.path_unescape(s) end

---@param u string
---@return luahost.url.parsed|nil
---@return string? err
function url.parse(u) end

---@param s string
---@return table<string, string>|nil
---@return string? err
function url.parse_query(s) end

---Encodes a table as a query string with sorted names.
---@param t table<string, string|number|boolean|(string|number|boolean)[]>
---@return string
function url.build_query(t) end

---------------------------------------------------------------- time

---@class luahost.time
time = {}

---@alias luahost.time.layout "rfc3339"|"rfc3339ms"|"rfc1123"|"date"|"datetime"|string

---Current time in whole milliseconds since the epoch.
---@return integer
function time.now_ms() end

---Current time in seconds since the epoch.
---@return number
function time.now() end

---Formats ms (UTC); RFC 3339 by default.
---@param ms number
---@param layout? luahost.time.layout
---@return string
function time.format(ms, layout) end

---Parses s; RFC 3339 by default.
---@param s string
---@param layout? luahost.time.layout
---@return integer|nil ms
---@return string? err
function time.parse(s, layout) end

---------------------------------------------------------------- log

---@class luahost.log
log = {}

---@param msg string
---@param fields? table<string, any>
function log.debug(msg, fields) end

---@param msg string
---@param fields? table<string, any>
function log.info(msg, fields) end

---@param msg string
---@param fields? table<string, any>
function log.warn(msg, fields) end

---@param msg string
---@param fields? table<string, any>
function log.error(msg, fields) end

---------------------------------------------------------------- strings

---@class luahost.strings
strings = {}

---@param s string
---@param sep string
---@param n? integer
---@return string[]
function strings.split(s, sep, n) end

---@param s string
---@return string[]
function strings.fields(s) end

---@param s string
---@param cutset? string
---@return string
function strings.trim(s, cutset) end

---@param s string
---@param prefix string
---@return string
function strings.trim_prefix(s, prefix) end

---@param s string
---@param suffix string
---@return string
function strings.trim_suffix(s, suffix) end

---@param s string
---@param prefix string
---@return boolean
function strings.has_prefix(s, prefix) end

---@param s string
---@param suffix string
---@return boolean
function strings.has_suffix(s, suffix) end

---@param s string
---@param substr string
---@return boolean
function strings.contains(s, substr) end

---@param s string
---@param substr string
---@return integer|nil
function strings.index(s, substr) end

---@param s string
---@param substr string
---@return integer
function strings.count(s, substr) end

---@param s string
---@return string
function strings.lower(s) end

---@param s string
---@return string
function strings.upper(s) end

---@param a string
---@param b string
---@return boolean
function strings.casefold_equal(a, b) end

---@param s string
---@param old string
---@param new string
---@param n? integer
---@return string
function strings.replace(s, old, new, n) end

---@param array (string|number)[]
---@param sep string
---@return string
function strings.join(array, sep) end

---@param s string
---@return integer
function strings.rune_len(s) end

---@param s string
---@return boolean
function strings.valid_utf8(s) end

---------------------------------------------------------------- require

---@overload fun(name: "module_api"): luahost.module_api
---@overload fun(name: "luahost.test"): luahost.test
---@overload fun(name: "json"): luahost.json
---@overload fun(name: "re"): luahost.re
---@overload fun(name: "crypto"): luahost.crypto
---@overload fun(name: "base64"): luahost.base64
---@overload fun(name: "url"): luahost.url
---@overload fun(name: "time"): luahost.time
---@overload fun(name: "log"): luahost.log
---@overload fun(name: "strings"): luahost.strings
---@param name string
---@return any
function require(name) end
