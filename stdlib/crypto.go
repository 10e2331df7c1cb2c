package stdlib

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"hash"

	lua "github.com/yuin/gopher-lua"
)

// maxRandomBytes caps crypto.random_bytes/random_hex: tokens and nonces
// are tens of bytes, and a cap keeps a typo from allocating gigabytes.
const maxRandomBytes = 1 << 20

func init() { register("crypto", loadCrypto) }

func loadCrypto(L *lua.LState, _ *Env) lua.LValue {
	t := L.CreateTable(0, 8)
	L.SetFuncs(t, map[string]lua.LGFunction{
		"sha256":      cryptoDigest(sha256.New),
		"sha512":      cryptoDigest(sha512.New),
		"sha1":        cryptoDigest(sha1.New),
		"md5":         cryptoDigest(md5.New),
		"hmac_sha256": cryptoHMAC(sha256.New),
		"hmac_sha512": cryptoHMAC(sha512.New),
		"hmac_sha1":   cryptoHMAC(sha1.New),
		"random_bytes": func(L *lua.LState) int {
			L.Push(lua.LString(cryptoRandom(L, "crypto.random_bytes")))
			return 1
		},
		"random_hex": func(L *lua.LState) int {
			L.Push(lua.LString(hex.EncodeToString(cryptoRandom(L, "crypto.random_hex"))))
			return 1
		},
		"constant_time_compare": func(L *lua.LState) int {
			a, b := L.CheckString(1), L.CheckString(2)
			L.Push(lua.LBool(subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1))
			return 1
		},
		"to_hex": func(L *lua.LState) int {
			L.Push(lua.LString(hex.EncodeToString([]byte(L.CheckString(1)))))
			return 1
		},
		"from_hex": func(L *lua.LState) int {
			b, err := hex.DecodeString(L.CheckString(1))
			if err != nil {
				L.Push(lua.LNil)
				L.Push(lua.LString("crypto.from_hex: " + err.Error()))
				return 2
			}
			L.Push(lua.LString(b))
			return 1
		},
	})
	return t
}

func cryptoDigest(h func() hash.Hash) lua.LGFunction {
	return func(L *lua.LState) int {
		d := h()
		d.Write([]byte(L.CheckString(1)))
		L.Push(lua.LString(hex.EncodeToString(d.Sum(nil))))
		return 1
	}
}

func cryptoHMAC(h func() hash.Hash) lua.LGFunction {
	return func(L *lua.LState) int {
		m := hmac.New(h, []byte(L.CheckString(1)))
		m.Write([]byte(L.CheckString(2)))
		L.Push(lua.LString(hex.EncodeToString(m.Sum(nil))))
		return 1
	}
}

func cryptoRandom(L *lua.LState, name string) []byte {
	n := L.CheckNumber(1)
	if !(n >= 0 && n <= maxRandomBytes) || n != lua.LNumber(int(n)) {
		L.RaiseError("%s: n must be a whole number of bytes from 0 to %d (1 MiB), got %s", name, maxRandomBytes, n.String())
	}
	b := make([]byte, int(n))
	if _, err := rand.Read(b); err != nil {
		L.RaiseError("%s: %v", name, err)
	}
	return b
}
