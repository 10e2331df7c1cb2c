package engine

import (
	"context"
	"testing"

	lua "github.com/yuin/gopher-lua"
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
