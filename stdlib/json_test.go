package stdlib

import (
	"encoding/json"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

func TestJSONRoundTripIsLossless(t *testing.T) {
	docs := []string{
		`{"a":1,"b":[1,2,3],"c":{"d":null,"e":[]},"f":{}}`,
		`[]`, `{}`, `null`, `true`, `"x\u0000y\"\\\n\u00e9\ud83d\ude00"`,
		`{"ts":1700000000000,"big":9007199254740991,"neg":-12.5,"exp":1e+300}`,
		`[null,null,{"x":[null]}]`,
	}
	L := lua.NewState()
	defer L.Close()
	for _, doc := range docs {
		v, err := DecodeJSON(L, []byte(doc))
		if err != nil {
			t.Fatalf("decode %s: %v", doc, err)
		}
		out, err := EncodeJSON(L, v, false)
		if err != nil {
			t.Fatalf("encode %s: %v", doc, err)
		}
		var want, got any
		_ = json.Unmarshal([]byte(doc), &want)
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: re-encoded to invalid JSON %s", doc, out)
		}
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if string(wb) != string(gb) {
			t.Errorf("round trip of %s gave %s", doc, out)
		}
	}
}

func TestJSONDecodeErrorsNameTheOffset(t *testing.T) {
	cases := map[string]string{
		`{"a":}`:     "offset 5",
		`[1,2`:       "offset 4",
		`{"a" 1}`:    "offset 5",
		`"abc`:       "end of JSON input",
		`tru`:        "expected true",
		`{"a":1} x`:  "after the JSON value",
		`[1,,2]`:     "offset 3",
		`"\q"`:       "invalid escape",
		`01x`:        "offset 1",
		"\"a\x01b\"": "control character",
	}
	L := lua.NewState()
	defer L.Close()
	for doc, want := range cases {
		_, err := DecodeJSON(L, []byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("decode %q: got error %v, want one containing %q", doc, err, want)
		}
	}
}

func TestJSONFromLua(t *testing.T) {
	L := lua.NewState()
	defer L.Close()
	L.PreloadModule("json", func(L *lua.LState) int { L.Push(loadJSON(L, &Env{})); return 1 })
	err := L.DoString(`
		local json = require("json")
		assert(json.encode({}) == "{}")
		assert(json.encode(json.array({})) == "[]")
		assert(json.encode(json.object({})) == "{}")
		assert(json.encode({1, 2, "x"}) == '[1,2,"x"]')
		assert(json.encode({b = 1, a = json.null}) == '{"a":null,"b":1}')
		assert(json.encode({[1] = "a", [3] = "c"}) == '{"1":"a","3":"c"}')
		assert(json.encode(1.5) == "1.5")
		assert(json.encode("é\n") == '"é\\n"')
		local v = json.decode('{"list":[],"n":null}')
		assert(json.encode(v.list) == "[]", "decoded empty arrays stay arrays")
		assert(v.n == json.null and tostring(v.n) == "null")
		assert(json.encode({a={b=1}}, {indent=true}) == '{\n  "a": {\n    "b": 1\n  }\n}')
		local t = {}; t.self = t
		local ok, err = pcall(json.encode, t)
		assert(not ok and err:find("nesting"), err)
		ok, err = pcall(json.encode, {f = print})
		assert(not ok and err:find("cannot encode a function"), err)
		ok, err = pcall(json.encode, 0/0)
		assert(not ok and err:find("cannot encode the number"), err)
		ok, err = pcall(json.decode, '{"a":')
		assert(not ok and err:find("json.decode: unexpected end of JSON input at offset 5", 1, true), err)
	`)
	if err != nil {
		t.Fatal(err)
	}
}

var benchEvent = []byte(`{"type":"m.room.message","room_id":"!abcdefghijkl:example.org","sender":"@alice:example.org","event_id":"$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG","origin_server_ts":1700000000000,"content":{"msgtype":"m.text","body":"Hello there, this is a reasonably sized message body that a user might send into a room, with some words.","format":"org.matrix.custom.html","formatted_body":"<p>Hello there, this is a <b>reasonably</b> sized message body that a user might send into a room.</p>","m.relates_to":{"m.in_reply_to":{"event_id":"$zyxwvutsrqponmlkjihgfedcba9876543210"}},"m.mentions":{"user_ids":["@bob:example.org","@carol:example.org"]}},"unsigned":{"age":1234,"transaction_id":"m1700000000000.0","prev_content":{"membership":"join","displayname":"Alice"}},"auth_events":["$a1:example.org","$a2:example.org","$a3:example.org"],"prev_events":["$p1:example.org"],"depth":42,"hashes":{"sha256":"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},"signatures":{"example.org":{"ed25519:a_abcd":"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz"}}}`)

func init() {
	// Pad the benchmark event to ~2 KB with a realistic extra field.
	var m map[string]any
	_ = json.Unmarshal(benchEvent, &m)
	m["content"].(map[string]any)["org.example.extra"] = strings.Repeat("padding ", 90)
	benchEvent, _ = json.Marshal(m)
}

// BenchmarkJSONLuaRoundTrip decodes and re-encodes a 2 KB event from Lua;
// compare with BenchmarkJSONGoRoundTrip (encoding/json alone).
func BenchmarkJSONLuaRoundTrip(b *testing.B) {
	L := lua.NewState()
	defer L.Close()
	L.PreloadModule("json", func(L *lua.LState) int { L.Push(loadJSON(L, &Env{})); return 1 })
	if err := L.DoString(`local json = require("json"); function rt(s) return json.encode(json.decode(s)) end`); err != nil {
		b.Fatal(err)
	}
	fn := L.GetGlobal("rt")
	arg := lua.LString(benchEvent)
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if err := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}, arg); err != nil {
			b.Fatal(err)
		}
		L.Pop(1)
	}
}

func BenchmarkJSONGoRoundTrip(b *testing.B) {
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := json.Unmarshal(benchEvent, &v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}
