package jinja

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Values inside the engine are nil (None), bool, int64, float64, string,
// Markup, []any, map[string]any, *undefined, *loopState and callable.
// Render's vars are normalised to these lazily, as they are read.

// Markup is a string that is already safe HTML: autoescaping leaves it as it
// is (the "safe" filter and escaping itself produce it).
type Markup string

// undefined is the value of a missing variable, key or attribute. Printing
// it gives "", testing it gives false, iterating it gives nothing; using it
// further (an attribute of it, arithmetic) is an error naming what was
// missing, as with Jinja's default Undefined.
type undefined struct {
	desc string // `"name" is undefined`, `map has no key "x"`
}

// callable is a function value: a method bound to its receiver, a global
// function, super() or loop.cycle.
type callable interface {
	call(r *renderer, args []any, kwargs map[string]any) (any, error)
}

// norm converts a Go value from Render's vars to an engine value.
// Integral floats become integers: Lua has one number type, and a timestamp
// or a count must print as "5", not "5.0".
func norm(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, string, Markup, []any, map[string]any, *undefined, *loopState, callable:
		return v
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case float32:
		return norm(float64(x))
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		return norm(uint64(x))
	case uint64:
		if x > math.MaxInt64 {
			return float64(x)
		}
		return int64(x)
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, s := range x {
			out[k] = s
		}
		return out
	}
	// Other slices and string-keyed maps (a Go caller's []map[string]any,
	// map[string]int, ...) by reflection; anything else prints as Go does.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).Interface()
		}
		return out
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			out := make(map[string]any, rv.Len())
			iter := rv.MapRange()
			for iter.Next() {
				out[iter.Key().String()] = iter.Value().Interface()
			}
			return out
		}
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	}
	return fmt.Sprint(v)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case Markup:
		return "Markup"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	case *undefined:
		return "undefined"
	case *loopState:
		return "loop"
	case callable:
		return "function"
	}
	return fmt.Sprintf("%T", v)
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil, *undefined:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case Markup:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// maxReprDepth bounds str/repr/== on nested (or cyclic) lists and maps.
const maxReprDepth = 64

// sizeLimitedBuilder builds the string of a value, failing with
// ErrOutputTooLarge past max bytes and ErrTooManySteps past maxElems.
type sizeLimitedBuilder struct {
	strings.Builder
	max      int
	elems    int // list and map elements written
	maxElems int // 0: no limit
	err      error
}

// element counts one list or map element against maxElems.
func (b *sizeLimitedBuilder) element() {
	b.elems++
	if b.maxElems > 0 && b.elems > b.maxElems && b.err == nil {
		b.err = ErrTooManySteps
	}
}

func (b *sizeLimitedBuilder) add(s string) {
	if b.err != nil {
		return
	}
	if b.Len()+len(s) > b.max {
		b.err = ErrOutputTooLarge
		return
	}
	b.WriteString(s)
}

// str is Python's str() of a value, as Jinja prints it.
func str(v any) string {
	s, _ := strLimited(v, math.MaxInt)
	return s
}

func strLimited(v any, max int) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case Markup:
		return string(x), nil
	case *undefined:
		return "", nil
	case []any, map[string]any:
		b := &sizeLimitedBuilder{max: max}
		writeRepr(b, v, 0)
		return b.String(), b.err
	}
	return scalarStr(v), nil
}

func scalarStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return pyFloat(x)
	case string:
		return x
	case Markup:
		return string(x)
	case *undefined:
		return ""
	case *loopState:
		return "<LoopContext>"
	case callable:
		return "<function>"
	}
	return fmt.Sprint(v)
}

// pyFloat formats like Python's repr(float): "2.0", "0.1", "1e+16", "1e-05".
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	exp := int(math.Floor(math.Log10(math.Abs(f))))
	// Log10 can be off by one near powers of ten; the shortest 'e' form
	// has the exact exponent.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	if i := strings.IndexByte(e, 'e'); i >= 0 {
		if n, err := strconv.Atoi(e[i+1:]); err == nil {
			exp = n
		}
	}
	if exp >= 16 || exp < -4 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// pyRepr is Python's repr() of a string.
func pyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

func repr(v any) string {
	b := &sizeLimitedBuilder{max: math.MaxInt}
	writeRepr(b, v, 0)
	return b.String()
}

func writeRepr(b *sizeLimitedBuilder, v any, depth int) {
	if b.err != nil {
		return
	}
	if depth > maxReprDepth {
		b.add("...")
		return
	}
	switch x := v.(type) {
	case string:
		b.add(pyRepr(x))
	case Markup:
		b.add("Markup(" + pyRepr(string(x)) + ")")
	case []any:
		b.add("[")
		for i, item := range x {
			if i > 0 {
				b.add(", ")
			}
			b.element()
			writeRepr(b, norm(item), depth+1)
			if b.err != nil {
				return
			}
		}
		b.add("]")
	case map[string]any:
		b.add("{")
		for i, k := range sortedKeys(x) {
			if i > 0 {
				b.add(", ")
			}
			b.element()
			b.add(pyRepr(k) + ": ")
			writeRepr(b, norm(x[k]), depth+1)
			if b.err != nil {
				return
			}
		}
		b.add("}")
	case *undefined:
		b.add("Undefined")
	default:
		b.add(scalarStr(v))
	}
}

// sortedKeys orders a map's keys: Go maps (and Lua tables) have no order of
// their own, and a template must render the same way every time.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// escapeHTML escapes like markupsafe: & < > " '.
func escapeHTML(s string) string {
	if !strings.ContainsAny(s, `&<>"'`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// escapeValue is the "escape" filter: Markup stays, anything else is
// escaped and becomes Markup.
func escapeValue(v any) Markup {
	if m, ok := v.(Markup); ok {
		return m
	}
	return Markup(escapeHTML(str(v)))
}

func isNumber(v any) bool {
	switch v.(type) {
	case int64, float64:
		return true
	}
	return false
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

func isStringish(v any) bool {
	switch v.(type) {
	case string, Markup:
		return true
	}
	return false
}

// equal is Python's == for engine values: numbers compare by value, a string
// equals a Markup with the same text, lists and maps compare deeply. Each
// element compared takes one from budget; when it runs out, equal reports
// false and the caller reports the limit.
func equal(a, b any, budget *int) bool {
	return equalN(a, b, 0, budget)
}

func equalN(a, b any, depth int, budget *int) bool {
	*budget--
	if depth > maxReprDepth || *budget < 0 {
		return false
	}
	a, b = norm(a), norm(b)
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case float64:
			return float64(x) == y
		}
		return false
	case float64:
		return isNumber(b) && x == toFloat(b)
	case string, Markup:
		return isStringish(b) && str(a) == str(b)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalN(x[i], y[i], depth+1, budget) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalN(v, w, depth+1, budget) {
				return false
			}
		}
		return true
	case *undefined:
		_, ok := b.(*undefined)
		return ok
	}
	// Functions and loop objects: equal only to themselves; a func value
	// is not comparable at all.
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta != nil && ta.Comparable() && a == b
}

// compare orders numbers and strings (Python's <); other pairs are errors.
func compare(a, b any) (int, error) {
	switch {
	case isNumber(a) && isNumber(b):
		if x, ok := a.(int64); ok {
			if y, ok := b.(int64); ok {
				return cmpInt(x, y), nil
			}
		}
		x, y := toFloat(a), toFloat(b)
		switch {
		case x < y:
			return -1, nil
		case x > y:
			return 1, nil
		}
		return 0, nil
	case isStringish(a) && isStringish(b):
		return strings.Compare(str(a), str(b)), nil
	}
	return 0, fmt.Errorf("cannot order %s and %s", typeName(a), typeName(b))
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// contains is Python's "in".
func containsValue(container, item any, budget *int) (bool, error) {
	switch c := norm(container).(type) {
	case string, Markup:
		if !isStringish(item) {
			return false, fmt.Errorf("'in <string>' needs a string on the left, not %s", typeName(item))
		}
		return strings.Contains(str(c), str(item)), nil
	case []any:
		for _, x := range c {
			if equalN(x, item, 0, budget) {
				return true, nil
			}
			if *budget < 0 {
				return false, nil
			}
		}
		return false, nil
	case map[string]any:
		k, ok := item.(string)
		if !ok {
			if m, isMarkup := item.(Markup); isMarkup {
				k, ok = string(m), true
			}
		}
		if !ok {
			return false, nil
		}
		_, found := c[k]
		return found, nil
	case *undefined:
		return false, nil
	}
	return false, fmt.Errorf("argument of type %s is not iterable", typeName(container))
}

// length is len() of a string (in characters), list or map.
func length(v any) (int, bool) {
	switch x := norm(v).(type) {
	case string:
		return utf8.RuneCountInString(x), true
	case Markup:
		return utf8.RuneCountInString(string(x)), true
	case []any:
		return len(x), true
	case map[string]any:
		return len(x), true
	case *undefined:
		return 0, true
	}
	return 0, false
}
