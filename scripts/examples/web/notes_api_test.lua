-- Tests of notes_api.lua: an authenticated JSON API, driven through
-- t.request with access tokens from seeded users.
local t = require("luahost.test")

t.load{ config = "luahost.yaml", module = "notes_api" }

t.describe("notes", function()
  t.test("need an access token", function()
    local r = t.request{ path = "/_synapse/client/notes" }
    t.equal(r.status, 401)
    t.equal(r.json.errcode, "M_MISSING_TOKEN")
    t.equal(t.request{ path = "/_synapse/client/notes", token = "nonsense" }.json.errcode, "M_UNKNOWN_TOKEN")
  end)

  t.test("are kept per user", function()
    t.seed{ users = { { id = "@alice:example.org", token = "alice-token" } } }
    local r = t.request{ method = "POST", path = "/_synapse/client/notes", token = "alice-token", json = { text = "buy milk" } }
    t.equal(r.status, 201)
    t.same(r.json, { id = 1 })
    t.same(t.request{ path = "/_synapse/client/notes/1", token = "alice-token" }.json, { id = 1, text = "buy milk" })
    -- `user` makes a token for a user (registering them if need be).
    t.same(t.request{ path = "/_synapse/client/notes", user = "@bob:example.org" }.json, { notes = {} })
    t.equal(t.request{ path = "/_synapse/client/notes/1", user = "@bob:example.org" }.status, 404)
  end)

  t.test("refuse bad bodies with Matrix errors", function()
    local r = t.request{ method = "POST", path = "/_synapse/client/notes", user = "@alice:example.org", body = "{not json" }
    t.equal(r.status, 400)
    t.equal(r.json.errcode, "M_NOT_JSON")
    r = t.request{ method = "POST", path = "/_synapse/client/notes", user = "@alice:example.org", json = { text = string.rep("x", 501) } }
    t.equal(r.status, 400)
    t.same(r.json, { errcode = "M_TOO_LARGE", error = "note too long", max_length = 500 })
  end)

  t.test("echo needs no token", function()
    local r = t.request{ method = "POST", path = "/_synapse/client/notes/echo", json = { a = { 1, 2 } } }
    t.equal(r.status, 200)
    t.same(r.json, { echo = { a = { 1, 2 } }, length = 11 })
  end)
end)
