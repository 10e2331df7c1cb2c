package engine

import (
	"testing"

	"github.com/luahost/luahost/internal/sandbox"
	lua "github.com/yuin/gopher-lua"
	luar "layeh.com/gopher-luar"
)

// Three ways to hand a script an event, reading sender, type and
// content.body as a spam check does: the engine's lazy proxy, gopher-luar's
// reflection wrapper, and a full table built by hand.

const readEvent = `return function(ev) return ev.sender, ev.type, ev.content.body end`

func benchEvent() *Event {
	return &Event{Type: "m.room.message", RoomID: "!abcdefgh:example.org", Sender: "@alice:example.org",
		EventID: "$0123456789abcdef", OriginServerTS: 1700000000000,
		Content: map[string]any{"msgtype": "m.text", "body": "hello there"}}
}

func benchReader(b *testing.B, L *lua.LState) *lua.LFunction {
	if err := L.DoString(readEvent); err != nil {
		b.Fatal(err)
	}
	fn := L.Get(-1).(*lua.LFunction)
	L.Pop(1)
	return fn
}

func BenchmarkEventToLua(b *testing.B) {
	ev := benchEvent()
	b.Run("proxy", func(b *testing.B) {
		L := sandbox.NewState()
		defer L.Close()
		fn := benchReader(b, L)
		b.ReportAllocs()
		for b.Loop() {
			if err := L.CallByParam(lua.P{Fn: fn, NRet: 3, Protect: true}, pushEvent(L, ev)); err != nil {
				b.Fatal(err)
			}
			L.Pop(3)
		}
	})
	b.Run("gopher-luar", func(b *testing.B) {
		// luar exposes Go field names (Sender, Content) unless tagged; the
		// struct below mirrors Event with luar tags so the script is the same.
		type luarEvent struct {
			Type    string         `luar:"type"`
			Sender  string         `luar:"sender"`
			Content map[string]any `luar:"content"`
		}
		L := sandbox.NewState()
		defer L.Close()
		fn := benchReader(b, L)
		b.ReportAllocs()
		for b.Loop() {
			v := luar.New(L, &luarEvent{Type: ev.Type, Sender: ev.Sender, Content: ev.Content})
			if err := L.CallByParam(lua.P{Fn: fn, NRet: 3, Protect: true}, v); err != nil {
				b.Fatal(err)
			}
			L.Pop(3)
		}
	})
	b.Run("full-table", func(b *testing.B) {
		L := sandbox.NewState()
		defer L.Close()
		fn := benchReader(b, L)
		b.ReportAllocs()
		for b.Loop() {
			if err := L.CallByParam(lua.P{Fn: fn, NRet: 3, Protect: true}, eventTable(L, ev)); err != nil {
				b.Fatal(err)
			}
			L.Pop(3)
		}
	})
}
