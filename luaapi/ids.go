package luaapi

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
)

// api.UserID, api.RoomID and api.RoomAlias: Synapse's identifier types
// (synapse.types), parsed and checked in Go with Synapse's rules, no host
// needed. An identifier is a read-only value with localpart, domain and
// to_string(); two with the same text are equal (==).

// MatrixID is a parsed identifier.
type MatrixID struct {
	Sigil     byte   // '@', '!' or '#'
	Localpart string // for a domainless room ID (MSC4291), the part after '!'
	Domain    string
	NoDomain  bool // a room ID of room versions without a domain in it
}

// String is the identifier's text, e.g. "@alice:example.org".
func (id *MatrixID) String() string {
	if id.NoDomain {
		return string(id.Sigil) + id.Localpart
	}
	return string(id.Sigil) + id.Localpart + ":" + id.Domain
}

// MarshalJSON lets json.encode(id) give the text.
func (id *MatrixID) MarshalJSON() ([]byte, error) { return json.Marshal(id.String()) }

type idKind struct {
	name  string // Synapse's class name, used in its error messages
	sigil byte
}

var (
	kindUserID    = idKind{"UserID", '@'}
	kindRoomID    = idKind{"RoomID", '!'}
	kindRoomAlias = idKind{"RoomAlias", '#'}
)

// domainlessRoomID is the form of MSC4291 room IDs: 43 characters of
// unpadded URL-safe base64 after the '!'.
var domainlessRoomID = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// parseMatrixID parses s as Synapse's from_string does: the sigil, then
// localpart ":" domain split at the first colon (or, for room IDs, a
// domainless MSC4291 ID). Like Synapse it does not check the domain: use
// ValidServerName (is_valid does).
func parseMatrixID(k idKind, s string) (*MatrixID, error) {
	if len(s) < 1 || s[0] != k.sigil {
		return nil, fmt.Errorf("Expected %s string to start with '%c'", k.name, k.sigil)
	}
	local, domain, ok := strings.Cut(s[1:], ":")
	if !ok {
		if k == kindRoomID {
			if !domainlessRoomID.MatchString(s[1:]) {
				return nil, fmt.Errorf("Expected %s string to be valid urlsafe unpadded base64 '%s'", k.name, s[1:])
			}
			return &MatrixID{Sigil: k.sigil, Localpart: s[1:], NoDomain: true}, nil
		}
		return nil, fmt.Errorf("Expected %s of the form '%clocalname:domain'", k.name, k.sigil)
	}
	return &MatrixID{Sigil: k.sigil, Localpart: local, Domain: domain}, nil
}

var validHost = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)

// ValidServerName reports whether s is a server name as the Matrix spec
// (and Synapse's parse_and_validate_server_name) allows: a DNS name, an
// IPv4 address or a bracketed IPv6 address, with an optional port.
func ValidServerName(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[:end+1], s[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return false
		}
		port = strings.TrimPrefix(port, ":")
		ip := net.ParseIP(host[1 : len(host)-1])
		if ip == nil || ip.To4() != nil && !strings.Contains(host, ":") {
			return false
		}
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i+1:]
			if port == "" {
				return false
			}
		}
		if host == "" || len(host) > 255 || !validHost.MatchString(host) {
			return false
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
			return false
		}
	}
	return true
}

// isValid is Synapse's is_valid: it parses, and checks the domain.
func isValid(k idKind, s string) bool {
	id, err := parseMatrixID(k, s)
	if err != nil {
		return false
	}
	return id.NoDomain || ValidServerName(id.Domain)
}

// installIDs adds api.UserID, api.RoomID and api.RoomAlias to t.
func installIDs(L *lua.LState, t *lua.LTable) {
	for _, k := range []idKind{kindUserID, kindRoomID, kindRoomAlias} {
		t.RawSetString(k.name, idClass(L, k))
	}
}

// idClass is one identifier type's table: from_string, is_valid, new, and
// a call (api.UserID(localpart, domain)) as Synapse's constructor.
func idClass(L *lua.LState, k idKind) *lua.LTable {
	cls := L.CreateTable(0, 4)
	fromString := func(L *lua.LState) int {
		s := L.CheckString(1)
		id, err := parseMatrixID(k, s)
		if err != nil {
			L.Error(NewSynapseErrorValue(L, 400, err.Error(), "M_INVALID_PARAM"), 1)
		}
		L.Push(pushID(L, id))
		return 1
	}
	construct := func(L *lua.LState) int {
		local := L.CheckString(1)
		domain := L.CheckString(2)
		L.Push(pushID(L, &MatrixID{Sigil: k.sigil, Localpart: local, Domain: domain}))
		return 1
	}
	mt := GuardLazy(L, cls, "api."+k.name, "function", func(L *lua.LState, cls *lua.LTable) {
		cls.RawSetString("from_string", L.NewFunction(sandbox.MethodTolerant(cls, fromString)))
		cls.RawSetString("is_valid", L.NewFunction(sandbox.MethodTolerant(cls, func(L *lua.LState) int {
			s, ok := L.Get(1).(lua.LString)
			L.Push(lua.LBool(ok && isValid(k, string(s))))
			return 1
		})))
		cls.RawSetString("new", L.NewFunction(sandbox.MethodTolerant(cls, construct)))
		cls.RawSetString("SIGIL", lua.LString(string(k.sigil)))
	})
	mt.RawSetString("__call", L.NewFunction(func(L *lua.LState) int {
		L.Remove(1) // the class itself
		return construct(L)
	}))
	return cls
}

// IDOf returns the identifier behind a Lua value made by api.UserID and
// friends.
func IDOf(v lua.LValue) (*MatrixID, bool) {
	if ud, ok := v.(*lua.LUserData); ok {
		id, ok := ud.Value.(*MatrixID)
		return id, ok
	}
	return nil, false
}

func pushID(L *lua.LState, id *MatrixID) lua.LValue {
	ud := L.NewUserData()
	ud.Value = id
	ud.Metatable = idMeta(L)
	return ud
}

const regIDMeta = "luahost.matrix_id"

func idMeta(L *lua.LState) *lua.LTable {
	if mt, ok := L.G.Registry.RawGetString(regIDMeta).(*lua.LTable); ok {
		return mt
	}
	mt := L.CreateTable(0, 8)
	check := func(L *lua.LState) *MatrixID {
		id, ok := IDOf(L.Get(1))
		if !ok {
			L.ArgError(1, "a Matrix identifier expected")
		}
		return id
	}
	toString := L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString(check(L).String()))
		return 1
	})
	getDomain := L.NewFunction(func(L *lua.LState) int {
		id := check(L)
		if id.NoDomain {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LString(id.Domain))
		}
		return 1
	})
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		id := check(L)
		switch L.CheckString(2) {
		case "localpart":
			L.Push(lua.LString(id.Localpart))
		case "domain":
			if id.NoDomain {
				L.Push(lua.LNil)
			} else {
				L.Push(lua.LString(id.Domain))
			}
		case "id":
			L.Push(lua.LString(id.String()))
		case "to_string":
			L.Push(toString)
		case "get_domain":
			L.Push(getDomain)
		default:
			L.Push(lua.LNil)
		}
		return 1
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("a Matrix identifier is read-only")
		return 0
	}))
	mt.RawSetString("__tostring", toString)
	mt.RawSetString("__eq", L.NewFunction(func(L *lua.LState) int {
		a, okA := IDOf(L.Get(1))
		b, okB := IDOf(L.Get(2))
		L.Push(lua.LBool(okA && okB && *a == *b))
		return 1
	}))
	mt.RawSetString("__concat", L.NewFunction(func(L *lua.LState) int {
		str := func(v lua.LValue) string {
			if id, ok := IDOf(v); ok {
				return id.String()
			}
			return L.ToStringMeta(v).String()
		}
		L.Push(lua.LString(str(L.Get(1)) + str(L.Get(2))))
		return 1
	}))
	mt.RawSetString("__metatable", lua.LString("MatrixID"))
	L.G.Registry.RawSetString(regIDMeta, mt)
	return mt
}
