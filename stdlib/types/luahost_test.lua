---@meta
-- LuaLS definitions of the test API a *_test.lua file gets from
-- require("luahost.test") (luahost test; docs/testing.md). Modules never
-- see it. Kept in step with cmd/luahost/luatest by its tests.

---@class luahost.test
local t = {}

---What t.load takes: a config file (and some of its modules), or one module file with its config.
---@class luahost.test.load
---@field config? string|table<string, any> # the config file (default "luahost.yaml"), or with file the module's config: table
---@field module? string|string[] # keep only these modules of the config file
---@field file? string # a module file, relative to the test file
---@field name? string # the module's name (default: the file name)
---@field server_name? string # default "example.org"
---@field timeout? string|number # e.g. "5s" or seconds
---@field init_timeout? string|number
---@field on_error? "deny"|"default"

---Declares what the tests load: at the top level for every test after it, or inside a test (before anything else) for that test.
---@param spec? luahost.test.load
function t.load(spec) end

---Declares a test. Each test gets a fresh homeserver, an empty store, a clock at 2024-01-01T00:00:00Z and no HTTP stubs.
---@param name string
---@param fn fun()
function t.test(name, fn) end

---Groups tests: their names become "group / name".
---@param name string
---@param fn fun()
function t.describe(name, fn) end

---Stops the running test and reports it skipped.
---@param reason? string
function t.skip(reason) end

---Loads the modules now (the first t.call or t.request does it otherwise); raises the load error.
function t.start() end

---What t.seed takes: the shape of `luahost call --fixture`.
---@class luahost.test.fixture
---@field users? {id: string, admin?: boolean, displayname?: string, avatar_url?: string, shadow_banned?: boolean, token?: string, devices?: {device_id: string, display_name?: string, token?: string}[]}[]
---@field rooms? {id?: string, creator?: string, members?: string[]|table<string, string>, public?: boolean, alias?: string, name?: string, topic?: string, power_levels?: table<string, any>, state?: {type: string, state_key?: string, sender?: string, content?: table<string, any>}[]}[]
---@field account_data? table<string, table<string, table<string, any>>> # user ID -> type -> content
---@field threepids? {user_id: string, medium: string, address: string, validated_at?: integer, added_at?: integer}[]

---Adds users, rooms, account data and threepids to the test's homeserver.
---@param fixture luahost.test.fixture
function t.seed(fixture) end

---Calls a callback across the loaded modules with the host's combine rules and returns the combined answer
---as a script would: a spam verdict and its extra fields, allowed and the replacement, a value.
---@param callback string # "check_event_for_spam" or "spam_checker.check_event_for_spam"
---@param ... any
---@return any ...
function t.call(callback, ...) end

---@class luahost.test.request
---@field method? string # default GET (POST with a body)
---@field path string
---@field query? table<string, string|string[]>
---@field headers? table<string, string|string[]>
---@field json? any # sent as the JSON body
---@field body? string
---@field token? string # sent as Authorization: Bearer
---@field user? string # a user to authenticate as (created if need be)

---@class luahost.test.response
---@field status integer
---@field headers table<string, string> # lower-case name -> first value
---@field body string
---@field json any? # the decoded body of a JSON answer

---Sends a request to the modules' web resources through the engine's handler.
---@param req luahost.test.request
---@return luahost.test.response
function t.request(req) end

---A room's timeline as event tables, oldest first; nil for an unknown room.
---@param room_id string
---@return table[]?
function t.events(room_id) end

---A user's global account data of a type, or nil.
---@param user_id string
---@param data_type string
---@return table<string, any>?
function t.account_data(user_id, data_type) end

---What the modules logged in this test (INFO and above): {level=, msg=, attribute = "value", ...}.
---@return {level: string, msg: string}[]
function t.logs() end

---The test's fake clock.
---@class luahost.test.clock
t.clock = {}

---The fake time in seconds since the epoch.
---@return number
function t.clock.now() end

---The fake time in milliseconds since the epoch.
---@return integer
function t.clock.now_ms() end

---Moves the clock on, running the background calls that fall due.
---@param seconds number
function t.clock.advance(seconds) end

---Stubs of api.http_client.
---@class luahost.test.http
t.http = {}

---@class luahost.test.stub
---@field method? string # any method when absent
---@field url string # with a query, the whole URL must match; without, the URL without its query
---@field status? integer # default 200
---@field json? any
---@field body? string
---@field headers? table<string, string>
---@field error? string # fail the request with this error instead

---Answers matching requests; a later stub wins over an earlier one.
---@param stub luahost.test.stub
function t.http.stub(stub) end

---Every request the modules made: {method=, url=, path=, query=, headers=, body=, json=}.
---@return {method: string, url: string, path: string, query: table<string, string>, headers: table<string, string>, body: string, json: any}[]
function t.http.requests() end

---Fails unless got == want.
---@param got any
---@param want any
---@param what? string
function t.equal(got, want, what) end

---Fails unless got and want have the same contents (deeply), listing each difference.
---@param got any
---@param want any
---@param what? string
function t.same(got, want, what) end

---Fails unless s matches the Lua pattern.
---@param s string
---@param pattern string
---@param what? string
function t.matches(s, pattern, what) end

---Fails unless fn raises an error containing want (plain text); returns the error message.
---@param fn fun()
---@param want? string
---@param what? string
---@return string
function t.raises(fn, want, what) end

---Fails unless v is true (not nil or false); returns v.
---@generic V
---@param v V
---@param what? string
---@return V
function t.ok(v, what) end

return t
