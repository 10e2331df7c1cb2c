package stdlib

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// FuzzJSON: decoding never panics; what it accepts is valid JSON, encodes
// again, and that encoding is stable: decode(encode(v)) encodes to the
// same JSON value (byte for byte but for how U+FFFD is written).
// The seeds in testdata/fuzz/FuzzJSON hold the hostile texts
// (1e400, deep nesting, invalid UTF-8, lone surrogates).
func FuzzJSON(f *testing.F) {
	f.Add([]byte(`{"a":[1,2.5,"x",null,true],"b":{}}`))
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeJSON(L, data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		b1, err := EncodeJSON(L, v, false)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", data, err)
		}
		v2, err := DecodeJSON(L, b1)
		if err != nil {
			t.Fatalf("cannot decode our own %q: %v", b1, err)
		}
		b2, err := EncodeJSON(L, v2, false)
		if err != nil {
			t.Fatalf("cannot encode %q again: %v", b1, err)
		}
		if !bytes.Equal(b1, b2) {
			var j1, j2 any
			if json.Unmarshal(b1, &j1) != nil || json.Unmarshal(b2, &j2) != nil || !reflect.DeepEqual(j1, j2) {
				t.Fatalf("round trip of %q: %q then %q", data, b1, b2)
			}
		}
	})
}
