package engine_test

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/cmd/luahost/memhost"
)

// The spam check every message goes through, as an admin would write it.
const benchSpamFn = `function(ev)
	if evil[ev.sender] then return "M_FORBIDDEN" end
	local body = ev.content.body
	if type(body) == "string" and body:find("buy cheap", 1, true) then return "M_FORBIDDEN" end
	return "NOT_SPAM"
end`

func benchEvent() *Event {
	return &Event{Type: "m.room.message", RoomID: "!abcdefgh:example.org", Sender: "@alice:example.org",
		EventID: "$0123456789abcdef", OriginServerTS: 1700000000000,
		Content: map[string]any{"msgtype": "m.text", "body": "hello there, how are you doing today?"}}
}

// BenchmarkCheckEventForSpam compares one check_event_for_spam through the
// engine (owner goroutine hand-off, pooled coroutine, deadline, lazy event
// proxy, combine) with the naive embedding: the event built as a Lua table
// by hand and the same function called with CallByParam on a bare state.
func BenchmarkCheckEventForSpam(b *testing.B) {
	ev := benchEvent()
	b.Run("engine", func(b *testing.B) {
		e := mustEngineB(b, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
			"m.lua": `local evil = { ["@spammer:example.org"] = true }
return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = ` + benchSpamFn + ` } end }`,
		})
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			d, err := e.CheckEventForSpam(ctx, ev)
			if err != nil || !d.Allowed() {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("naive", func(b *testing.B) {
		L := lua.NewState()
		defer L.Close()
		if err := L.DoString(`evil = { ["@spammer:example.org"] = true }; check = ` + benchSpamFn); err != nil {
			b.Fatal(err)
		}
		fn := L.GetGlobal("check")
		b.ReportAllocs()
		for b.Loop() {
			t := L.NewTable()
			t.RawSetString("type", lua.LString(ev.Type))
			t.RawSetString("room_id", lua.LString(ev.RoomID))
			t.RawSetString("sender", lua.LString(ev.Sender))
			t.RawSetString("event_id", lua.LString(ev.EventID))
			t.RawSetString("origin_server_ts", lua.LNumber(ev.OriginServerTS))
			content := L.NewTable()
			for k, v := range ev.Content {
				content.RawSetString(k, lua.LString(v.(string)))
			}
			t.RawSetString("content", content)
			if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, t); err != nil {
				b.Fatal(err)
			}
			if L.Get(-1).String() != "NOT_SPAM" {
				b.Fatal(L.Get(-1))
			}
			L.Pop(1)
		}
	})
}

func mustEngineB(b *testing.B, yaml string, files map[string]string) *Engine {
	b.Helper()
	cfg, err := ParseConfig([]byte(yaml), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(context.Background(), cfg, Options{FS: mapFS(files), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// stateMap20 is a room state of 20 events: create, power levels, join
// rules, name, topic and 15 members.
func stateMap20() StateMap {
	s := StateMap{}
	put := func(typ, key string, content map[string]any) {
		k := key
		s.Put(&Event{Type: typ, StateKey: &k, Sender: "@alice:example.org", RoomID: "!r:example.org",
			EventID: "$" + typ + key, Content: content})
	}
	put("m.room.create", "", map[string]any{"creator": "@alice:example.org", "room_version": "10"})
	put("m.room.power_levels", "", map[string]any{"users_default": 0.0, "events_default": 0.0})
	put("m.room.join_rules", "", map[string]any{"join_rule": "invite"})
	put("m.room.name", "", map[string]any{"name": "Bench"})
	put("m.room.topic", "", map[string]any{"topic": "Benchmarks"})
	for i := 0; i < 15; i++ {
		put("m.room.member", fmt.Sprintf("@user%d:example.org", i), map[string]any{"membership": "join", "displayname": fmt.Sprintf("User %d", i)})
	}
	return s
}

// pushEventTable builds an event as a full Lua table, the naive way.
func pushEventTable(L *lua.LState, ev *Event) *lua.LTable {
	t := L.NewTable()
	t.RawSetString("type", lua.LString(ev.Type))
	t.RawSetString("room_id", lua.LString(ev.RoomID))
	t.RawSetString("sender", lua.LString(ev.Sender))
	t.RawSetString("event_id", lua.LString(ev.EventID))
	if ev.StateKey != nil {
		t.RawSetString("state_key", lua.LString(*ev.StateKey))
	}
	content := L.NewTable()
	for k, v := range ev.Content {
		switch v := v.(type) {
		case string:
			content.RawSetString(k, lua.LString(v))
		case float64:
			content.RawSetString(k, lua.LNumber(v))
		}
	}
	t.RawSetString("content", content)
	return t
}

// The third-party rule a room with rules would run for every event: look
// at the sender's membership and the join rules.
const benchAllowedFn = `function(ev, state)
	local member = state["m.room.member"][ev.sender]
	if member and member.content.membership == "ban" then return false end
	local jr = state["m.room.join_rules"][""]
	if jr and jr.content.join_rule == "public" and ev.type == "m.room.message" then return true end
	return true
end`

// BenchmarkCheckEventAllowed: check_event_allowed with a 20-event state
// map, through the engine (lazy proxies) against a bare call that builds
// the event and the state map as tables.
func BenchmarkCheckEventAllowed(b *testing.B) {
	ev := benchEvent()
	ev.Sender = "@user3:example.org"
	state := stateMap20()
	b.Run("engine", func(b *testing.B) {
		e := mustEngineB(b, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
			"m.lua": `return { new = function(c, api) api.register_third_party_rules_callbacks{ check_event_allowed = ` + benchAllowedFn + ` } end }`,
		})
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			d, err := e.CheckEventAllowed(ctx, ev, state)
			if err != nil || !d.Allowed() {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("naive", func(b *testing.B) {
		L := lua.NewState()
		defer L.Close()
		if err := L.DoString(`check = ` + benchAllowedFn); err != nil {
			b.Fatal(err)
		}
		fn := L.GetGlobal("check")
		b.ReportAllocs()
		for b.Loop() {
			st := L.NewTable()
			for typ, byKey := range state {
				inner := L.NewTable()
				for k, sev := range byKey {
					inner.RawSetString(k, pushEventTable(L, sev))
				}
				st.RawSetString(typ, inner)
			}
			if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, pushEventTable(L, ev), st); err != nil {
				b.Fatal(err)
			}
			L.Pop(1)
		}
	})
}

const benchUnsignedFn = `function(ev)
	if ev.sender == "@bot:example.org" then return { ["org.example.bot"] = true } end
	return {}
end`

// BenchmarkAddFieldToUnsigned: add_field_to_unsigned_callback, called for
// every event a client sees.
func BenchmarkAddFieldToUnsigned(b *testing.B) {
	ev := benchEvent()
	b.Run("engine", func(b *testing.B) {
		e := mustEngineB(b, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
			"m.lua": `return { new = function(c, api) api.register_add_extra_fields_to_unsigned_client_event_callbacks{ add_field_to_unsigned_callback = ` + benchUnsignedFn + ` } end }`,
		})
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.AddFieldsToUnsigned(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("naive", func(b *testing.B) {
		L := lua.NewState()
		defer L.Close()
		if err := L.DoString(`f = ` + benchUnsignedFn); err != nil {
			b.Fatal(err)
		}
		fn := L.GetGlobal("f")
		b.ReportAllocs()
		for b.Loop() {
			if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, pushEventTable(L, ev)); err != nil {
				b.Fatal(err)
			}
			L.Pop(1)
		}
	})
}

// BenchmarkHostCall measures a yield/resume round trip: a callback making
// 10 host calls that return at once (a profile look-up on the in-memory
// homeserver) against the same callback without them.
func BenchmarkHostCall(b *testing.B) {
	for _, n := range []int{0, 10} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			host := memhost.New("example.org")
			if _, err := host.CreateUser("@alice:example.org", false); err != nil {
				b.Fatal(err)
			}
			cfg, _ := ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: m.lua\n"), "b.yaml")
			e, err := New(context.Background(), cfg, Options{Host: host, Logger: quiet, HostHonoursContext: true, FS: mapFS(map[string]string{
				"m.lua": fmt.Sprintf(`return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
					for i = 1, %d do api.get_profile_for_user("@alice:example.org") end
					return api.NOT_SPAM
				end } end }`, n)})})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			ev := benchEvent()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.CheckEventForSpam(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParkedCoroutines parks 1,000 calls of one module in api.sleep
// at once and reports the heap each parked call holds.
func BenchmarkParkedCoroutines(b *testing.B) {
	const n = 1000
	e := mustEngineB(b, "server_name: example.org\nmodules:\n  - module: m.lua\n    timeout: 30s\n", map[string]string{
		"m.lua": `return { new = function(c, api) api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
			api.sleep(tonumber(ev.content.body))
			return api.NOT_SPAM
		end } end }`,
	})
	ctx := context.Background()
	for b.Loop() {
		var before, during goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&before)
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.CheckEventForSpam(ctx, msg("@a:example.org", "0.5")); err != nil {
					b.Error(err)
				}
			}()
		}
		time.Sleep(250 * time.Millisecond) // all parked by now
		goruntime.GC()
		goruntime.ReadMemStats(&during)
		wg.Wait()
		b.ReportMetric(float64(int64(during.HeapAlloc)-int64(before.HeapAlloc))/n, "heapB/parked")
		b.ReportMetric(time.Since(start).Seconds(), "s/1000-sleeps-of-0.5s")
	}
}
