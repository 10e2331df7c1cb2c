package stdlib

import (
	"encoding/base64"
	"errors"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Matrix writes "unpadded base64" (standard alphabet, no '=') for keys,
// hashes and signatures and URL-safe unpadded base64 in a few places; other
// systems pad. Both decoders therefore accept padded and unpadded input, and
// both encoders take an optional pad flag.

func init() { register("base64", loadBase64) }

func loadBase64(L *lua.LState, _ *Env) lua.LValue {
	t := L.CreateTable(0, 4)
	L.SetFuncs(t, map[string]lua.LGFunction{
		"encode":     b64Encode(base64.StdEncoding, base64.RawStdEncoding, true),
		"decode":     b64Decode("base64.decode", base64.StdEncoding, base64.RawStdEncoding),
		"url_encode": b64Encode(base64.URLEncoding, base64.RawURLEncoding, false),
		"url_decode": b64Decode("base64.url_decode", base64.URLEncoding, base64.RawURLEncoding),
	})
	return t
}

func b64Encode(padded, raw *base64.Encoding, padDefault bool) lua.LGFunction {
	return func(L *lua.LState) int {
		s := L.CheckString(1)
		enc := raw
		if L.OptBool(2, padDefault) {
			enc = padded
		}
		L.Push(lua.LString(enc.EncodeToString([]byte(s))))
		return 1
	}
}

func b64Decode(name string, padded, raw *base64.Encoding) lua.LGFunction {
	return func(L *lua.LState) int {
		s := L.CheckString(1)
		enc := raw
		if strings.HasSuffix(s, "=") {
			enc = padded
		}
		b, err := enc.DecodeString(s)
		if err != nil {
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				if off := int(ce); off < len(s) {
					L.RaiseError("%s: malformed input at byte offset %d (%q)", name, off, s[off:off+1])
				}
				L.RaiseError("%s: malformed input at byte offset %d (truncated)", name, int64(ce))
			}
			L.RaiseError("%s: %v", name, err)
		}
		L.Push(lua.LString(b))
		return 1
	}
}
