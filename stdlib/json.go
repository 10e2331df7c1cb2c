package stdlib

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// The json library converts straight between JSON text and Lua values,
// without an intermediate interface{} tree: that is what keeps a JSON
// round trip from Lua within ~2x of encoding/json alone.

const (
	// MaxStringBuild caps a string one builtin call builds (json.encode,
	// string.rep, table.concat, ...): one call must not be able to take
	// the process down.
	MaxStringBuild = 64 << 20
	// MaxJSONInput caps the text json.decode reads.
	MaxJSONInput = 16 << 20
	// deadlineEvery is how many values encoding or decoding handles
	// between checks of the call's deadline.
	deadlineEvery = 4096

	regNull   = "luahost.json.null"
	regArray  = "luahost.json.array"
	regObject = "luahost.json.object"
	maxDepth  = 512
)

func init() { register("json", loadJSON) }

func loadJSON(L *lua.LState, _ *Env) lua.LValue {
	t := L.CreateTable(0, 8)
	L.SetFuncs(t, map[string]lua.LGFunction{
		"encode": jsonEncode,
		"decode": jsonDecode,
		"array":  func(L *lua.LState) int { return markShape(L, arrayMeta(L)) },
		"object": func(L *lua.LState) int { return markShape(L, objectMeta(L)) },
	})
	t.RawSetString("null", Null(L))
	return t
}

func markShape(L *lua.LState, mt *lua.LTable) int {
	t, ok := L.Get(1).(*lua.LTable)
	if !ok {
		if L.Get(1) != lua.LNil {
			L.ArgError(1, "table expected, got "+L.Get(1).Type().String())
		}
		t = L.NewTable()
	}
	t.Metatable = mt
	L.Push(t)
	return 1
}

// registryValue returns the per-state singleton stored under key,
// creating it with mk. States never share these values.
func registryValue(L *lua.LState, key string, mk func() lua.LValue) lua.LValue {
	reg := L.G.Registry
	if v := reg.RawGetString(key); v != lua.LNil {
		return v
	}
	v := mk()
	reg.RawSetString(key, v)
	return v
}

// Null returns the state's JSON null sentinel (json.null, api.null).
func Null(L *lua.LState) lua.LValue {
	return registryValue(L, regNull, func() lua.LValue {
		ud := L.NewUserData()
		mt := L.CreateTable(0, 2)
		mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString("null"))
			return 1
		}))
		mt.RawSetString("__metatable", lua.LString("json.null"))
		ud.Metatable = mt
		return ud
	})
}

// IsNull reports whether v is the state's null sentinel.
func IsNull(L *lua.LState, v lua.LValue) bool {
	ud, ok := v.(*lua.LUserData)
	return ok && ud == Null(L)
}

func arrayMeta(L *lua.LState) *lua.LTable {
	return registryValue(L, regArray, func() lua.LValue {
		mt := L.CreateTable(0, 2)
		mt.RawSetString("__jsontype", lua.LString("array"))
		return mt
	}).(*lua.LTable)
}

func objectMeta(L *lua.LState) *lua.LTable {
	return registryValue(L, regObject, func() lua.LValue {
		mt := L.CreateTable(0, 2)
		mt.RawSetString("__jsontype", lua.LString("object"))
		return mt
	}).(*lua.LTable)
}

// NewArray returns an empty table that encodes as a JSON array.
func NewArray(L *lua.LState, capacity int) *lua.LTable {
	t := L.CreateTable(capacity, 0)
	t.Metatable = arrayMeta(L)
	return t
}

// MarkArray makes t encode as a JSON array even when empty.
func MarkArray(L *lua.LState, t *lua.LTable) { t.Metatable = arrayMeta(L) }

// jsonShape is "array", "object" or "" for a table marked by json.array,
// json.object or neither.
func jsonShape(t *lua.LTable) string {
	if mt, ok := t.Metatable.(*lua.LTable); ok {
		if s, ok := mt.RawGetString("__jsontype").(lua.LString); ok {
			return string(s)
		}
	}
	return ""
}

func jsonEncode(L *lua.LState) int {
	indent := false
	if opts, ok := L.Get(2).(*lua.LTable); ok {
		indent = lua.LVAsBool(opts.RawGetString("indent"))
	}
	b, err := EncodeJSON(L, L.CheckAny(1), indent)
	if err != nil {
		L.RaiseError("json.encode: %s", err.Error())
	}
	L.Push(lua.LString(b))
	return 1
}

func jsonDecode(L *lua.LState) int {
	s := L.CheckString(1)
	if len(s) > MaxJSONInput {
		L.RaiseError("json.decode: the text is %d bytes, over the %d MiB limit", len(s), MaxJSONInput>>20)
	}
	v, err := DecodeJSON(L, []byte(s))
	if err != nil {
		L.RaiseError("json.decode: %s", err.Error())
	}
	L.Push(v)
	return 1
}

// EncodeJSON encodes a Lua value as JSON. Tables whose keys are exactly
// 1..n encode as arrays, others as objects (number keys become strings);
// an empty table is {} unless marked with json.array. Userdata whose
// value implements json.Marshaler (events, state maps) encode themselves.
func EncodeJSON(L *lua.LState, v lua.LValue, indent bool) ([]byte, error) {
	e := encoder{L: L, null: Null(L)}
	b, err := e.value(make([]byte, 0, 256), v, 0)
	if err != nil {
		return nil, err
	}
	if indent {
		var out []byte
		out, err = indentJSON(b)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return b, nil
}

func indentJSON(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type encoder struct {
	L     *lua.LState
	null  lua.LValue
	keys  []string
	steps int
}

func (e *encoder) value(b []byte, v lua.LValue, depth int) ([]byte, error) {
	// A table reached many times over (t = {t, t} twenty times) encodes
	// to gigabytes: the size and the deadline are checked as it goes.
	if e.steps++; e.steps%deadlineEvery == 0 {
		if err := deadline(e.L); err != nil {
			return nil, err
		}
	}
	if len(b) > MaxStringBuild {
		return nil, fmt.Errorf("the JSON text would exceed %d MiB", MaxStringBuild>>20)
	}
	switch v := v.(type) {
	case *lua.LNilType:
		return append(b, "null"...), nil
	case lua.LBool:
		if v {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case lua.LNumber:
		return appendNumber(b, float64(v))
	case lua.LString:
		return appendString(b, string(v)), nil
	case *lua.LTable:
		if depth >= maxDepth {
			return nil, errors.New("nesting deeper than 512 levels (a table that contains itself?)")
		}
		return e.table(b, v, depth+1)
	case *lua.LUserData:
		if v == e.null {
			return append(b, "null"...), nil
		}
		if m, ok := v.Value.(json.Marshaler); ok {
			j, err := m.MarshalJSON()
			if err != nil {
				return nil, err
			}
			return append(b, j...), nil
		}
		return nil, errors.New("cannot encode a userdata value")
	default:
		return nil, fmt.Errorf("cannot encode a %s value", v.Type().String())
	}
}

func appendNumber(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("cannot encode the number %v", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(b, int64(f), 10), nil
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64), nil
}

func (e *encoder) table(b []byte, t *lua.LTable, depth int) ([]byte, error) {
	shape := jsonShape(t)
	n := t.Len()
	if shape != "object" {
		isArray := shape == "array"
		if !isArray && n > 0 {
			// An array only if there are no keys besides 1..n.
			isArray = true
			count := 0
			t.ForEach(func(_, _ lua.LValue) { count++ })
			isArray = count == n
		}
		if isArray {
			b = append(b, '[')
			var err error
			for i := 1; i <= n; i++ {
				if i > 1 {
					b = append(b, ',')
				}
				if b, err = e.value(b, t.RawGetInt(i), depth); err != nil {
					return nil, err
				}
			}
			return append(b, ']'), nil
		}
	}
	// Objects: keys sorted so output is stable (tests, signatures, caches).
	start := len(e.keys)
	var bad lua.LValue
	t.ForEach(func(k, _ lua.LValue) {
		switch k := k.(type) {
		case lua.LString:
			e.keys = append(e.keys, string(k))
		case lua.LNumber:
			e.keys = append(e.keys, lua.LVAsString(k))
		default:
			bad = k
		}
	})
	if bad != nil {
		e.keys = e.keys[:start]
		return nil, fmt.Errorf("cannot encode a table with a %s key", bad.Type().String())
	}
	keys := e.keys[start:]
	sort.Strings(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		v := t.RawGetString(k)
		if v == lua.LNil {
			if f, ferr := strconv.ParseFloat(k, 64); ferr == nil {
				v = t.RawGet(lua.LNumber(f))
			}
		}
		if b, err = e.value(b, v, depth); err != nil {
			e.keys = e.keys[:start]
			return nil, err
		}
	}
	e.keys = e.keys[:start]
	return append(b, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// SyntaxError is a malformed JSON document; Offset is the byte offset.
type SyntaxError struct {
	Msg    string
	Offset int
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.Msg, e.Offset) }

// DecodeJSON decodes one JSON document into Lua values: objects become
// tables, arrays become tables marked as arrays (so they encode back as
// arrays even when empty), null becomes json.null.
func DecodeJSON(L *lua.LState, data []byte) (lua.LValue, error) {
	d := decoder{L: L, data: data, null: Null(L), arrMeta: arrayMeta(L)}
	d.skip()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.skip()
	if d.pos != len(d.data) {
		return nil, d.errorf("unexpected data after the JSON value")
	}
	return v, nil
}

type decoder struct {
	L       *lua.LState
	data    []byte
	pos     int
	null    lua.LValue
	arrMeta *lua.LTable
	steps   int
}

// deadline is the error of L's call once its deadline has passed.
func deadline(L *lua.LState) error {
	if L == nil {
		return nil
	}
	if ctx := L.Context(); ctx != nil {
		return ctx.Err()
	}
	return nil
}

func (d *decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Offset: d.pos}
}

func (d *decoder) skip() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (lua.LValue, error) {
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of JSON input")
	}
	if depth > maxDepth {
		return nil, d.errorf("nesting deeper than %d levels", maxDepth)
	}
	if d.steps++; d.steps%deadlineEvery == 0 {
		if err := deadline(d.L); err != nil {
			return nil, err
		}
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return lua.LString(s), nil
	case c == 't':
		return d.literal("true", lua.LTrue)
	case c == 'f':
		return d.literal("false", lua.LFalse)
	case c == 'n':
		return d.literal("null", d.null)
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	default:
		return nil, d.errorf("invalid character %q looking for a value", rune(c))
	}
}

func (d *decoder) literal(word string, v lua.LValue) (lua.LValue, error) {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return nil, d.errorf("invalid literal, expected %s", word)
	}
	d.pos += len(word)
	return v, nil
}

func (d *decoder) number() (lua.LValue, error) {
	start := d.pos
	if d.data[d.pos] == '-' {
		d.pos++
	}
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++ // JSON allows no leading zeros
	} else if digits() == 0 {
		return nil, d.errorf("invalid number")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return nil, d.errorf("invalid number: digits expected after '.'")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, d.errorf("invalid number: digits expected in exponent")
		}
	}
	f, err := strconv.ParseFloat(string(d.data[start:d.pos]), 64)
	if err != nil {
		d.pos = start
		if errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0) {
			return nil, d.errorf("number out of range")
		}
		return nil, d.errorf("invalid number")
	}
	return lua.LNumber(f), nil
}

func (d *decoder) str() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	// Fast path: no escapes.
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c == '"' {
			s := string(d.data[start:d.pos])
			d.pos++
			return s, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.pos++
	}
	buf := append([]byte(nil), d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c < 0x20:
			return "", d.errorf("invalid control character in string")
		case c == '\\':
			if d.pos+1 >= len(d.data) {
				return "", d.errorf("unexpected end of JSON input in string escape")
			}
			e := d.data[d.pos+1]
			d.pos += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, err := d.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
						save := d.pos
						d.pos += 2
						if r2, err = d.hex4(); err != nil {
							return "", err
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r = dec
						} else {
							d.pos = save
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.pos -= 2
				return "", d.errorf("invalid escape '\\%c' in string", e)
			}
		default:
			buf = append(buf, c)
			d.pos++
		}
	}
	return "", d.errorf("unexpected end of JSON input in string")
}

func (d *decoder) hex4() (rune, error) {
	if len(d.data)-d.pos < 4 {
		return 0, d.errorf("invalid \\u escape")
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, d.errorf("invalid \\u escape")
		}
	}
	d.pos += 4
	return r, nil
}

func (d *decoder) object(depth int) (lua.LValue, error) {
	d.pos++
	t := d.L.CreateTable(0, 4)
	d.skip()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return t, nil
	}
	for {
		d.skip()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.errorf("object key expected")
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.skip()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errorf("':' expected after object key")
		}
		d.pos++
		d.skip()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		t.RawSetString(k, v)
		d.skip()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of JSON input in object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return t, nil
		default:
			return nil, d.errorf("',' or '}' expected in object")
		}
	}
}

func (d *decoder) array(depth int) (lua.LValue, error) {
	d.pos++
	t := d.L.CreateTable(4, 0)
	t.Metatable = d.arrMeta
	d.skip()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return t, nil
	}
	for i := 1; ; i++ {
		d.skip()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		t.RawSetInt(i, v)
		d.skip()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of JSON input in array")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return t, nil
		default:
			return nil, d.errorf("',' or ']' expected in array")
		}
	}
}

// ToLua converts a Go value built from encoding/json types (nil, bool,
// float64, json.Number, string, []any, map[string]any) and common Go
// scalars into Lua values. Unknown types go through encoding/json.
func ToLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case lua.LValue:
		return v
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case float32:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case uint64:
		return lua.LNumber(v)
	case json.Number:
		f, _ := v.Float64()
		return lua.LNumber(f)
	case []string:
		t := NewArray(L, len(v))
		for i, s := range v {
			t.RawSetInt(i+1, lua.LString(s))
		}
		return t
	case []any:
		t := NewArray(L, len(v))
		for i, e := range v {
			t.RawSetInt(i+1, toLuaElem(L, e))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, e := range v {
			t.RawSetString(k, toLuaElem(L, e))
		}
		return t
	case map[string]string:
		t := L.CreateTable(0, len(v))
		for k, e := range v {
			t.RawSetString(k, lua.LString(e))
		}
		return t
	case json.RawMessage:
		lv, err := DecodeJSON(L, v)
		if err != nil {
			return lua.LNil
		}
		return lv
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return lua.LNil
		}
		lv, err := DecodeJSON(L, b)
		if err != nil {
			return lua.LNil
		}
		return lv
	}
}

// toLuaElem is ToLua inside a container, where a Go nil is JSON null.
func toLuaElem(L *lua.LState, v any) lua.LValue {
	if v == nil {
		return Null(L)
	}
	return ToLua(L, v)
}

// FromLua converts a Lua value to the Go values encoding/json produces
// (nil, bool, float64, string, []any, map[string]any), using the same
// array/object rules as json.encode.
func FromLua(L *lua.LState, v lua.LValue) (any, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		return float64(v), nil
	case lua.LString:
		return string(v), nil
	case *lua.LUserData:
		if IsNull(L, v) {
			return nil, nil
		}
	}
	b, err := EncodeJSON(L, v, false)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}
