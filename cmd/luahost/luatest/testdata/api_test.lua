-- The test API, checked from Lua: each test asserts what the docs promise.
local t = require("luahost.test")

t.load{ config = "luahost.yaml" }

local function say(body, sender, room)
  return t.call("check_event_for_spam", { type = "m.room.message", room_id = room or "!r:example.org",
    sender = sender or "@alice:example.org", content = { body = body } })
end

t.describe("the clock", function()
  t.test("starts at 2024-01-01 and moves only when told", function()
    t.equal(t.clock.now(), 1704067200)
    t.equal(t.clock.now_ms(), 1704067200000)
    t.equal(t.request{ path = "/_synapse/client/probe" }.json.now_ms, 1704067200000)
    t.clock.advance(1.5)
    t.equal(t.request{ path = "/_synapse/client/probe" }.json.now_ms, 1704067201500)
  end)

  t.test("runs background calls as it passes their time", function()
    t.start()
    t.clock.advance(10)
    t.equal(t.request{ path = "/_synapse/client/probe" }.json.ticks, 10)
  end)

  t.test("api.sleep moves it", function()
    say("sleep")
    t.equal(t.clock.now(), 1704067200 + 30)
    t.equal(t.request{ path = "/_synapse/client/probe" }.json.ticks, 30)
  end)

  t.test("store keys expire by it", function()
    say("remember", "@bob:example.org")
    t.clock.advance(59)
    t.same({ say("recall") }, { "M_FORBIDDEN", { last = "@bob:example.org" } })
    t.clock.advance(1)
    t.equal(say("recall"), "NOT_SPAM")
  end)
end)

t.describe("outbound HTTP", function()
  t.test("is answered by stubs and recorded", function()
    t.http.stub{ method = "POST", url = "https://hooks.example.com/check", json = { spam = true, reason = "listed" } }
    t.same({ say("webhook", "@mallory:example.org") }, { "M_FORBIDDEN", { reason = "listed" } })
    local reqs = t.http.requests()
    t.equal(#reqs, 1)
    t.equal(reqs[1].method, "POST")
    t.equal(reqs[1].url, "https://hooks.example.com/check")
    t.same(reqs[1].json, { sender = "@mallory:example.org" })
    t.equal(reqs[1].headers["content-type"], "application/json")
  end)

  t.test("the latest matching stub wins", function()
    t.http.stub{ url = "https://hooks.example.com/check", json = { spam = true } }
    t.http.stub{ url = "https://hooks.example.com/check", json = { spam = false } }
    t.equal(say("webhook"), "NOT_SPAM")
  end)

  t.test("a request no stub matches fails in the module, naming it", function()
    t.http.stub{ method = "GET", url = "https://hooks.example.com/check", json = {} }
    local err = t.raises(function() say("webhook") end, "no t.http.stub matches POST https://hooks.example.com/check")
    t.matches(err, "%(probe%.lua:16%)")
    t.matches(err, "stubs: GET https://hooks%.example%.com/check")
  end)

  t.test("a stub can fail the request or answer an error status", function()
    t.http.stub{ url = "https://hooks.example.com/check", error = "connection reset by peer" }
    t.raises(function() say("webhook") end, "connection reset by peer")
    t.http.stub{ url = "https://hooks.example.com/check", status = 503, body = "busy" }
    t.raises(function() say("webhook") end, "503 Service Unavailable")
  end)
end)

t.describe("the homeserver", function()
  t.test("is seeded with users, rooms and state", function()
    t.seed{
      users = { { id = "@alice:example.org" }, { id = "@eve:example.org", displayname = "Spammer" } },
      rooms = { { id = "!r:example.org", creator = "@alice:example.org",
                  members = { ["@alice:example.org"] = "join", ["@bob:example.org"] = "ban" } } },
    }
    t.equal(t.call("user_may_join_room", "@bob:example.org", "!r:example.org", false), "M_FORBIDDEN")
    t.equal(t.call("user_may_join_room", "@eve:example.org", "!r:example.org", false), "M_FORBIDDEN")
    t.equal(t.call("user_may_join_room", "@carol:example.org", "!r:example.org", false), "NOT_SPAM")
  end)

  t.test("shows what the module did", function()
    t.seed{ users = { { id = "@alice:example.org" } },
            rooms = { { id = "!r:example.org", members = { "@alice:example.org" } } } }
    say("announce")
    local events = t.events("!r:example.org")
    t.equal(events[#events].content.body, "announced")
    t.same(t.account_data("@alice:example.org", "org.example.seen"), { at = 1704067200000 })
    t.equal(t.events("!nowhere:example.org"), nil)
  end)

  t.test("starts empty for every test", function()
    t.equal(t.account_data("@alice:example.org", "org.example.seen"), nil)
    t.equal(say("recall"), "NOT_SPAM")
  end)
end)

t.describe("requests", function()
  t.test("carry method, query, headers and body", function()
    local r = t.request{ method = "PUT", path = "/_synapse/client/probe", query = { a = "1" },
                         headers = { ["X-Probe"] = "yes" }, body = "raw" }
    t.equal(r.status, 200)
    t.equal(r.headers["content-type"], "application/json")
    t.same(r.json, { method = "PUT", query = { a = "1" }, header = "yes", ticks = 0, now_ms = 1704067200000, body = "raw" })
  end)

  t.test("authenticate with a token or a user", function()
    t.seed{ users = { { id = "@alice:example.org", token = "secret" } } }
    t.equal(t.request{ path = "/_synapse/client/probe", token = "secret" }.json.who, "@alice:example.org")
    t.equal(t.request{ path = "/_synapse/client/probe", user = "@bob:example.org" }.json.who, "@bob:example.org")
    t.equal(t.request{ path = "/_synapse/client/probe", token = "wrong" }.status, 401)
  end)
end)

t.describe("loading", function()
  t.test("picks modules of a config by name", function()
    t.load{ config = "luahost.yaml", module = "other" }
    t.equal(t.call("is_user_expired", "@old:example.org"), true)
    t.raises(function() say("x") end, "no loaded module registered spam_checker.check_event_for_spam")
  end)

  t.test("names a module the config does not have", function()
    t.load{ config = "luahost.yaml", module = "othr" }
    t.raises(t.start, 'no module named "othr" (did you mean "other"?)')
  end)

  t.test("must come before the world is made", function()
    t.seed{ users = { { id = "@a:example.org" } } }
    t.raises(function() t.load{ config = "luahost.yaml" } end, "call it before t.seed")
  end)

  t.test("the modules never see the test API", function()
    t.start()
    local started
    for _, r in ipairs(t.logs()) do if r.msg == "started" then started = r end end
    t.equal(started.probe_ok, "false")
  end)
end)

t.describe("assertions", function()
  t.test("raises returns the message", function()
    local msg = t.raises(function() error("boom") end)
    t.matches(msg, "api_test%.lua:%d+: boom$")
  end)

  t.test("same compares deeply", function()
    t.same({ 1, { a = "x" } }, { 1, { a = "x" } })
    t.raises(function() t.same({ a = 1 }, { a = 2 }) end, ".a: got 1, want 2")
  end)

  t.test("ok passes its value on", function()
    t.equal(t.ok(42), 42)
  end)

  t.test("skip stops a test", function()
    t.skip("not needed here")
    error("not reached")
  end)
end)

t.test("print goes to the test's output", function()
  print("visible with -v")
end)
