package engine

import (
	"encoding/json"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/stdlib"
)

// Events and state maps reach scripts as read-only proxies: building a
// Matrix event as a Lua table costs 1.5-3 µs, a proxy ~0.4 µs, and most
// callbacks read two or three fields. A proxy converts a field on first
// access and caches it; pairs(), json.encode() and event:get_dict() (a
// modifiable deep copy, as Synapse's EventBase.get_dict()) still work.

// proxyMeta returns the state's metatable for one kind of read-only proxy
// (event, state map, request) and whether it was already built. A new one
// refuses writes with readOnly and answers getmetatable() with name; the
// caller adds __index and the other metamethods.
func proxyMeta(L *lua.LState, name, readOnly string) (mt *lua.LTable, built bool) {
	key := proxyKeys[name]
	if key == "" {
		key = "luahost.proxy." + name
	}
	if mt, ok := L.G.Registry.RawGetString(key).(*lua.LTable); ok {
		return mt, true
	}
	mt = L.CreateTable(0, 2)
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s", readOnly)
		return 0
	}))
	mt.RawSetString("__metatable", lua.LString(name))
	L.G.Registry.RawSetString(key, mt)
	return mt, false
}

// proxyKeys are the registry keys of the proxy metatables, made once.
var proxyKeys = map[string]string{}

func init() {
	for _, n := range []string{"event", "state_map", "request", "object"} {
		proxyKeys[n] = "luahost.proxy." + n
	}
}

type eventProxy struct {
	ev                *Event
	content, unsigned lua.LValue
}

// MarshalJSON lets json.encode(event) encode the event.
func (p *eventProxy) MarshalJSON() ([]byte, error) { return json.Marshal(p.ev) }

// pushEvent returns a read-only proxy of ev for L.
func pushEvent(L *lua.LState, ev *Event) lua.LValue {
	if ev == nil {
		return lua.LNil
	}
	ud := L.NewUserData()
	ud.Value = &eventProxy{ev: ev}
	ud.Metatable = eventMeta(L)
	return ud
}

// eventOf returns the event behind a proxy.
func eventOf(v lua.LValue) (*Event, bool) {
	if ud, ok := v.(*lua.LUserData); ok {
		if p, ok := ud.Value.(*eventProxy); ok {
			return p.ev, true
		}
	}
	return nil, false
}

func eventMeta(L *lua.LState) *lua.LTable {
	mt, built := proxyMeta(L, "event", "events are read-only: use event:get_dict() for a copy you can change")
	if built {
		return mt
	}
	getDict := L.NewFunction(func(L *lua.LState) int {
		p := checkEvent(L)
		L.Push(eventTable(L, p.ev))
		return 1
	})
	isState := L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LBool(checkEvent(L).ev.StateKey != nil))
		return 1
	})
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		p := checkEvent(L)
		ev := p.ev
		switch L.CheckString(2) {
		case "type":
			L.Push(lua.LString(ev.Type))
		case "sender":
			L.Push(lua.LString(ev.Sender))
		case "room_id":
			L.Push(optString(ev.RoomID))
		case "event_id":
			L.Push(optString(ev.EventID))
		case "state_key":
			if ev.StateKey == nil {
				L.Push(lua.LNil)
			} else {
				L.Push(lua.LString(*ev.StateKey))
			}
		case "content":
			if p.content == nil {
				p.content = contentToLua(L, ev)
			}
			L.Push(p.content)
		case "unsigned":
			if p.unsigned == nil {
				p.unsigned = pushObject(L, ev.Unsigned)
			}
			L.Push(p.unsigned)
		case "origin_server_ts":
			if ev.OriginServerTS == 0 {
				L.Push(lua.LNil)
			} else {
				L.Push(lua.LNumber(ev.OriginServerTS))
			}
		case "redacts":
			L.Push(optString(ev.Redacts))
		case "get_dict":
			L.Push(getDict)
		case "is_state":
			L.Push(isState)
		case "membership":
			if ev.Type == "m.room.member" {
				m, _ := ev.ContentMap()["membership"].(string)
				L.Push(optString(m))
			} else {
				L.Push(lua.LNil)
			}
		default:
			L.Push(lua.LNil)
		}
		return 1
	}))
	mt.RawSetString("__pairs", L.NewFunction(func(L *lua.LState) int {
		p := checkEvent(L)
		L.Push(L.GetGlobal("next"))
		L.Push(eventTable(L, p.ev))
		L.Push(lua.LNil)
		return 3
	}))
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		p := checkEvent(L)
		L.Push(lua.LString(fmt.Sprintf("event %s (%s from %s)", p.ev.EventID, p.ev.Type, p.ev.Sender)))
		return 1
	}))
	return mt
}

func checkEvent(L *lua.LState) *eventProxy {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if p, ok := ud.Value.(*eventProxy); ok {
			return p
		}
	}
	L.ArgError(1, "event expected (use event:get_dict(), not event.get_dict())")
	return nil
}

func optString(s string) lua.LValue {
	if s == "" {
		return lua.LNil
	}
	return lua.LString(s)
}

func objectToLua(L *lua.LState, m map[string]any) lua.LValue {
	if m == nil {
		return L.NewTable()
	}
	return stdlib.ToLua(L, m)
}

// An event's content (and unsigned) reaches scripts as a read-only proxy
// over the Go map: a script reads two or three fields, and building the
// whole table costs a dozen allocations (gopher-lua's tables keep a key
// list and an index beside their hash). type() says "table", pairs() and
// json.encode() see every field, a nested object is a proxy too, an array
// is a real table. event:get_dict() gives modifiable tables.
type objectProxy struct {
	m     map[string]any
	cache map[string]lua.LValue
}

// MarshalJSON lets json.encode encode the object.
func (p *objectProxy) MarshalJSON() ([]byte, error) { return json.Marshal(p.m) }

func pushObject(L *lua.LState, m map[string]any) lua.LValue {
	if m == nil {
		m = map[string]any{}
	}
	ud := L.NewUserData()
	ud.Value = &objectProxy{m: m}
	ud.Metatable = objectMeta(L)
	return ud
}

// objectValue converts one field of a proxied object.
func objectValue(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return stdlib.Null(L)
	case map[string]any:
		return pushObject(L, v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	}
	return stdlib.ToLua(L, v)
}

func objectMeta(L *lua.LState) *lua.LTable {
	mt, built := proxyMeta(L, "object", "event content is read-only: use event:get_dict() for a copy you can change")
	if built {
		return mt
	}
	check := func(L *lua.LState) *objectProxy {
		if ud, ok := L.Get(1).(*lua.LUserData); ok {
			if p, ok := ud.Value.(*objectProxy); ok {
				return p
			}
		}
		L.ArgError(1, "object expected")
		return nil
	}
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		p := check(L)
		k, ok := L.Get(2).(lua.LString)
		if !ok {
			L.Push(lua.LNil)
			return 1
		}
		if v, ok := p.cache[string(k)]; ok {
			L.Push(v)
			return 1
		}
		raw, ok := p.m[string(k)]
		if !ok {
			L.Push(lua.LNil)
			return 1
		}
		v := objectValue(L, raw)
		switch v.(type) {
		case *lua.LTable, *lua.LUserData:
			// Containers are cached, so a script sees the same one each time.
			if p.cache == nil {
				p.cache = map[string]lua.LValue{}
			}
			p.cache[string(k)] = v
		}
		L.Push(v)
		return 1
	}))
	mt.RawSetString("__pairs", L.NewFunction(func(L *lua.LState) int {
		p := check(L)
		t := L.CreateTable(0, len(p.m))
		for k, raw := range p.m {
			v, ok := p.cache[k]
			if !ok {
				v = objectValue(L, raw)
			}
			t.RawSetString(k, v)
		}
		L.Push(L.GetGlobal("next"))
		L.Push(t)
		L.Push(lua.LNil)
		return 3
	}))
	mt.RawSetString("__len", L.NewFunction(func(L *lua.LState) int {
		check(L)
		L.Push(lua.LNumber(0)) // an object has no array part
		return 1
	}))
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString(fmt.Sprintf("table: %p", check(L))))
		return 1
	}))
	sandbox.MarkTableLike(mt)
	return mt
}

// contentToLua converts an event's content: straight from its JSON when
// the event came from EventFromJSON (the per-module cost is then only the
// decoding of what a script reads), else from the Go map.
func contentToLua(L *lua.LState, ev *Event) lua.LValue {
	return pushObject(L, ev.ContentMap())
}

// eventTable is a full, modifiable Lua table of ev.
func eventTable(L *lua.LState, ev *Event) *lua.LTable {
	t := L.CreateTable(0, 9)
	t.RawSetString("type", lua.LString(ev.Type))
	t.RawSetString("sender", lua.LString(ev.Sender))
	if ev.RoomID != "" {
		t.RawSetString("room_id", lua.LString(ev.RoomID))
	}
	if ev.EventID != "" {
		t.RawSetString("event_id", lua.LString(ev.EventID))
	}
	if ev.StateKey != nil {
		t.RawSetString("state_key", lua.LString(*ev.StateKey))
	}
	t.RawSetString("content", objectToLua(L, ev.ContentMap()))
	if ev.Unsigned != nil {
		t.RawSetString("unsigned", objectToLua(L, ev.Unsigned))
	}
	if ev.OriginServerTS != 0 {
		t.RawSetString("origin_server_ts", lua.LNumber(ev.OriginServerTS))
	}
	if ev.Redacts != "" {
		t.RawSetString("redacts", lua.LString(ev.Redacts))
	}
	return t
}

// eventFromLua reads an event a script returned (a table or a proxy).
func eventFromLua(L *lua.LState, v lua.LValue) (*Event, error) {
	if ev, ok := eventOf(v); ok {
		cp := *ev
		return &cp, nil
	}
	if _, ok := v.(*lua.LTable); !ok {
		return nil, fmt.Errorf("expected an event table, got %s", v.Type().String())
	}
	b, err := stdlib.EncodeJSON(L, v, false)
	if err != nil {
		return nil, err
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("not a valid event: %w", err)
	}
	return &ev, nil
}

type stateProxy struct {
	state StateMap
	types map[string]*lua.LTable
}

// MarshalJSON lets json.encode(state) encode the state map.
func (p *stateProxy) MarshalJSON() ([]byte, error) { return json.Marshal(p.state) }

// pushState returns a read-only proxy of a state map:
// state[event_type][state_key] is an event proxy.
func pushState(L *lua.LState, s StateMap) lua.LValue {
	ud := L.NewUserData()
	ud.Value = &stateProxy{state: s}
	ud.Metatable = stateMeta(L)
	return ud
}

func (p *stateProxy) typeTable(L *lua.LState, typ string) lua.LValue {
	if t, ok := p.types[typ]; ok {
		return t
	}
	m, ok := p.state[typ]
	if !ok {
		return lua.LNil
	}
	t := L.CreateTable(0, len(m))
	for k, ev := range m {
		t.RawSetString(k, pushEvent(L, ev))
	}
	if p.types == nil {
		p.types = map[string]*lua.LTable{}
	}
	p.types[typ] = t
	return t
}

func stateMeta(L *lua.LState) *lua.LTable {
	mt, built := proxyMeta(L, "state_map", "state maps are read-only")
	if built {
		return mt
	}
	check := func(L *lua.LState) *stateProxy {
		if ud, ok := L.Get(1).(*lua.LUserData); ok {
			if p, ok := ud.Value.(*stateProxy); ok {
				return p
			}
		}
		L.ArgError(1, "state map expected")
		return nil
	}
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		p := check(L)
		L.Push(p.typeTable(L, L.CheckString(2)))
		return 1
	}))
	mt.RawSetString("__pairs", L.NewFunction(func(L *lua.LState) int {
		p := check(L)
		all := L.CreateTable(0, len(p.state))
		for typ := range p.state {
			all.RawSetString(typ, p.typeTable(L, typ))
		}
		L.Push(L.GetGlobal("next"))
		L.Push(all)
		L.Push(lua.LNil)
		return 3
	}))
	return mt
}

// toLua converts Go values to Lua, with proxies for events and state.
func toLua(L *lua.LState, v any) lua.LValue {
	str := func(t *lua.LTable, k, s string) {
		if s != "" {
			t.RawSetString(k, lua.LString(s))
		}
	}
	// The host's answers, built directly: through encoding/json they cost
	// a fifth of a host call.
	switch v := v.(type) {
	case *Event:
		return pushEvent(L, v)
	case mediaFile:
		return v.toLua(L)
	case []RequestInfo:
		t := L.CreateTable(len(v), 0)
		for _, r := range v {
			rt := L.CreateTable(2, 2)
			rt.RawSetString("user_agent", lua.LString(r.UserAgent))
			rt.RawSetString("ip", lua.LString(r.IP))
			rt.RawSetInt(1, lua.LString(r.UserAgent))
			rt.RawSetInt(2, lua.LString(r.IP))
			t.Append(rt)
		}
		return t
	case StateMap:
		return pushState(L, v)
	case *requestProxy:
		if v == nil {
			return lua.LNil
		}
		return pushRequest(L, v)
	case *Profile:
		if v == nil {
			return lua.LNil
		}
		t := L.CreateTable(0, 2)
		str(t, "display_name", v.DisplayName)
		str(t, "avatar_url", v.AvatarURL)
		return t
	case *UserInfo:
		if v == nil {
			return lua.LNil
		}
		t := L.CreateTable(0, 7)
		t.RawSetString("user_id", lua.LString(v.UserID))
		t.RawSetString("is_admin", lua.LBool(v.IsAdmin))
		t.RawSetString("is_guest", lua.LBool(v.IsGuest))
		t.RawSetString("is_deactivated", lua.LBool(v.Deactivated))
		t.RawSetString("is_shadow_banned", lua.LBool(v.ShadowBanned))
		t.RawSetString("creation_ts", lua.LNumber(v.CreationTS))
		t.RawSetString("locked", lua.LBool(v.Locked))
		return t
	case *Requester:
		if v == nil {
			return lua.LNil
		}
		t := L.CreateTable(0, 5)
		t.RawSetString("user_id", lua.LString(v.UserID))
		str(t, "device_id", v.DeviceID)
		t.RawSetString("is_guest", lua.LBool(v.IsGuest))
		t.RawSetString("shadow_banned", lua.LBool(v.ShadowBanned))
		str(t, "app_service_id", v.AppServiceID)
		return t
	}
	return stdlib.ToLua(L, v)
}

// values is a host-call result of fixed Go values converted with toLua.
func values(vs ...any) sandbox.Result {
	return func(L *lua.LState) []lua.LValue {
		out := make([]lua.LValue, len(vs))
		for i, v := range vs {
			out[i] = toLua(L, v)
		}
		return out
	}
}
