package jinja

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

type testFunc func(r *renderer, v any, args []any) (bool, error)

// tests are the "x is name" tests.
var tests map[string]testFunc

func init() {
	withR := func(f func(r *renderer, v, arg any) (bool, error)) testFunc {
		return func(r *renderer, v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, fmt.Errorf("takes one argument (%d given)", len(args))
			}
			return f(r, v, args[0])
		}
	}
	oneArg := func(f func(v, arg any) (bool, error)) testFunc {
		return withR(func(_ *renderer, v, arg any) (bool, error) { return f(v, arg) })
	}
	noArg := func(f func(v any) bool) testFunc {
		return func(_ *renderer, v any, args []any) (bool, error) {
			if len(args) != 0 {
				return false, errors.New("takes no arguments")
			}
			return f(v), nil
		}
	}
	order := func(want func(int) bool) testFunc {
		return oneArg(func(v, arg any) (bool, error) {
			c, err := compare(v, arg)
			return err == nil && want(c), err
		})
	}
	eq := withR(func(r *renderer, v, arg any) (bool, error) { return r.equal(v, arg) })
	ne := withR(func(r *renderer, v, arg any) (bool, error) {
		eq, err := r.equal(v, arg)
		return !eq, err
	})
	lt := order(func(c int) bool { return c < 0 })
	le := order(func(c int) bool { return c <= 0 })
	gt := order(func(c int) bool { return c > 0 })
	ge := order(func(c int) bool { return c >= 0 })
	isInt := func(v any) bool { _, ok := v.(int64); return ok }
	parity := func(want int64) testFunc {
		return func(_ *renderer, v any, args []any) (bool, error) {
			if len(args) != 0 {
				return false, errors.New("takes no arguments")
			}
			n, ok := v.(int64)
			if !ok {
				return false, fmt.Errorf("needs an integer, not %s", typeName(v))
			}
			return n%2 == want || n%2 == -want, nil
		}
	}
	tests = map[string]testFunc{
		"defined":   noArg(func(v any) bool { _, ok := v.(*undefined); return !ok }),
		"undefined": noArg(func(v any) bool { _, ok := v.(*undefined); return ok }),
		"none":      noArg(func(v any) bool { return v == nil }),
		"boolean":   noArg(func(v any) bool { _, ok := v.(bool); return ok }),
		"true":      noArg(func(v any) bool { return v == true }),
		"false":     noArg(func(v any) bool { return v == false }),
		"number":    noArg(isNumber),
		"integer":   noArg(isInt),
		"float":     noArg(func(v any) bool { _, ok := v.(float64); return ok }),
		"string":    noArg(isStringish),
		"mapping":   noArg(func(v any) bool { _, ok := v.(map[string]any); return ok }),
		"sequence": noArg(func(v any) bool {
			switch v.(type) {
			case []any, map[string]any, string, Markup:
				return true
			}
			return false
		}),
		"iterable": noArg(func(v any) bool {
			switch v.(type) {
			case []any, map[string]any, string, Markup, *undefined:
				return true
			}
			return false
		}),
		"callable": noArg(func(v any) bool { _, ok := v.(callable); return ok }),
		"escaped":  noArg(func(v any) bool { _, ok := v.(Markup); return ok }),
		"even":     parity(0),
		"odd":      parity(1),
		"divisibleby": oneArg(func(v, arg any) (bool, error) {
			n, ok1 := v.(int64)
			d, ok2 := arg.(int64)
			if !ok1 || !ok2 {
				return false, errors.New("needs integers")
			}
			if d == 0 {
				return false, errors.New("division by zero")
			}
			return n%d == 0, nil
		}),
		"lower": noArg(func(v any) bool { s, ok := v.(string); return ok && s == strings.ToLower(s) }),
		"upper": noArg(func(v any) bool { s, ok := v.(string); return ok && s == strings.ToUpper(s) }),
		"in":    withR(func(r *renderer, v, arg any) (bool, error) { return r.contains(arg, v) }),
		"eq":    eq, "equalto": eq, "==": eq,
		"ne": ne, "!=": ne,
		"lt": lt, "lessthan": lt, "<": lt,
		"le": le, "<=": le,
		"gt": gt, "greaterthan": gt, ">": gt,
		"ge": ge, ">=": ge,
		"sameas": oneArg(func(v, arg any) (bool, error) {
			switch v.(type) {
			case nil, bool:
				return v == arg, nil
			}
			return false, nil
		}),
	}
}

// globalFuncs are the functions a template may call by name (set in init:
// super renders templates, which reads globalFuncs).
var globalFuncs map[string]callable

func init() {
	globalFuncs = map[string]callable{
		"range": builtinFunc(rangeFunc),
		"dict":  builtinFunc(dictFunc),
		"super": builtinFunc(superFunc),
	}
}

type builtinFunc func(r *renderer, args []any, kwargs map[string]any) (any, error)

func (f builtinFunc) call(r *renderer, args []any, kwargs map[string]any) (any, error) {
	return f(r, args, kwargs)
}

// rangeFunc is Python's range(stop) / range(start, stop[, step]), as a list
// counted against the step limit.
func rangeFunc(r *renderer, args []any, kwargs map[string]any) (any, error) {
	if len(kwargs) > 0 || len(args) < 1 || len(args) > 3 {
		return nil, errors.New("range takes 1 to 3 integers")
	}
	n := make([]int64, len(args))
	for i, a := range args {
		v, ok := a.(int64)
		if !ok {
			return nil, fmt.Errorf("range needs integers, not %s", typeName(a))
		}
		n[i] = v
	}
	start, stop, step := int64(0), n[0], int64(1)
	if len(n) > 1 {
		start, stop = n[0], n[1]
	}
	if len(n) > 2 {
		step = n[2]
	}
	if step == 0 {
		return nil, errors.New("range step must not be zero")
	}
	var count int64
	switch {
	case step > 0 && stop > start:
		count = (stop - start + step - 1) / step
	case step < 0 && stop < start:
		count = (start - stop - step - 1) / -step
	}
	if count < 0 || count > int64(r.opts.MaxSteps) {
		return nil, fmt.Errorf("%w: range of %d items", ErrTooManySteps, count)
	}
	if err := r.step(int(count)); err != nil {
		return nil, err
	}
	out := make([]any, count)
	for i := range out {
		out[i] = start + int64(i)*step
	}
	return out, nil
}

func dictFunc(_ *renderer, args []any, kwargs map[string]any) (any, error) {
	if len(args) > 0 {
		return nil, errors.New("dict takes keyword arguments only")
	}
	m := make(map[string]any, len(kwargs))
	for k, v := range kwargs {
		m[k] = v
	}
	return m, nil
}

// superFunc renders the parent's version of the block being rendered.
func superFunc(r *renderer, args []any, kwargs map[string]any) (any, error) {
	if len(args) > 0 || len(kwargs) > 0 {
		return nil, errors.New("super() takes no arguments")
	}
	if len(r.blocks) == 0 {
		return nil, errors.New("super() is only available inside a {% block %}")
	}
	cur := r.blocks[len(r.blocks)-1]
	if cur.idx+1 >= len(cur.chain) {
		return nil, fmt.Errorf("block %q has no parent block for super()", cur.chain[cur.idx].name)
	}
	out := &output{max: r.opts.MaxOutputBytes}
	if err := r.renderBlock(cur.chain, cur.idx+1, cur.sc, out); err != nil {
		return nil, err
	}
	if r.autoescape {
		return Markup(out.String()), nil
	}
	return out.String(), nil
}

var dictMethods = map[string]bool{"items": true, "keys": true, "values": true, "get": true}

var strMethods = map[string]bool{
	"upper": true, "lower": true, "strip": true, "lstrip": true, "rstrip": true, "startswith": true,
	"endswith": true, "replace": true, "split": true, "title": true, "capitalize": true, "join": true,
}

// method is a Python method bound to a dict or a string.
type method struct {
	recv any
	name string
}

func (m *method) call(r *renderer, args []any, kwargs map[string]any) (any, error) {
	res, err := m.callRaw(r, args, kwargs)
	if err != nil {
		return nil, fmt.Errorf("%s.%s(): %w", typeName(m.recv), m.name, err)
	}
	return res, nil
}

func (m *method) callRaw(r *renderer, args []any, kwargs map[string]any) (any, error) {
	if d, ok := m.recv.(map[string]any); ok {
		switch m.name {
		case "items":
			if err := noArgs(args, kwargs); err != nil {
				return nil, err
			}
			return dictItems(r, d)
		case "keys", "values":
			if err := noArgs(args, kwargs); err != nil {
				return nil, err
			}
			if err := r.step(len(d)); err != nil {
				return nil, err
			}
			out := make([]any, 0, len(d))
			for _, k := range sortedKeys(d) {
				if m.name == "keys" {
					out = append(out, k)
				} else {
					out = append(out, d[k])
				}
			}
			return out, nil
		case "get":
			a, err := bind(args, kwargs, param{"key", required}, param{"default", nil})
			if err != nil {
				return nil, err
			}
			if isStringish(a[0]) {
				if v, ok := d[str(a[0])]; ok {
					return norm(v), nil
				}
			}
			return a[1], nil
		}
	}
	_, isMarkup := m.recv.(Markup)
	wrap := func(s string) any {
		if isMarkup {
			return Markup(s)
		}
		return s
	}
	s := str(m.recv)
	switch m.name {
	case "upper", "lower", "title", "capitalize":
		if err := noArgs(args, kwargs); err != nil {
			return nil, err
		}
		f := map[string]func(string) string{"upper": strings.ToUpper, "lower": strings.ToLower, "title": title, "capitalize": capitalize}[m.name]
		return wrap(f(s)), nil
	case "strip", "lstrip", "rstrip":
		a, err := bind(args, kwargs, param{"chars", nil})
		if err != nil {
			return nil, err
		}
		var res string
		switch {
		case a[0] == nil && m.name == "strip":
			res = strings.TrimFunc(s, unicode.IsSpace)
		case a[0] == nil && m.name == "lstrip":
			res = strings.TrimLeftFunc(s, unicode.IsSpace)
		case a[0] == nil:
			res = strings.TrimRightFunc(s, unicode.IsSpace)
		case m.name == "strip":
			res = strings.Trim(s, str(a[0]))
		case m.name == "lstrip":
			res = strings.TrimLeft(s, str(a[0]))
		default:
			res = strings.TrimRight(s, str(a[0]))
		}
		return wrap(res), nil
	case "startswith", "endswith":
		a, err := bind(args, kwargs, param{"prefix", required})
		if err != nil {
			return nil, err
		}
		candidates := []any{a[0]}
		if list, ok := a[0].([]any); ok {
			candidates = list
		}
		for _, c := range candidates {
			if (m.name == "startswith" && strings.HasPrefix(s, str(c))) || (m.name == "endswith" && strings.HasSuffix(s, str(c))) {
				return true, nil
			}
		}
		return false, nil
	case "replace":
		return filterReplace(r, m.recv, args, kwargs)
	case "split":
		a, err := bind(args, kwargs, param{"sep", nil}, param{"maxsplit", int64(-1)})
		if err != nil {
			return nil, err
		}
		max, ok := intIndex(a[1])
		if !ok {
			return nil, errors.New("maxsplit must be an integer")
		}
		var parts []string
		switch {
		case a[0] == nil:
			parts = splitFields(s, int(max))
		case str(a[0]) == "":
			return nil, errors.New("empty separator")
		case max < 0:
			parts = strings.Split(s, str(a[0]))
		default:
			parts = strings.SplitN(s, str(a[0]), int(max)+1)
		}
		if err := r.step(len(parts)); err != nil {
			return nil, err
		}
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = wrap(p)
		}
		return out, nil
	case "join":
		if len(args) != 1 || len(kwargs) > 0 {
			return nil, errors.New("takes one argument")
		}
		return filterJoin(r, args[0], []any{m.recv}, nil)
	}
	return nil, errors.New("unknown method")
}

// splitFields is Python's str.split() without a separator.
func splitFields(s string, max int) []string {
	if max < 0 {
		return strings.Fields(s)
	}
	var parts []string
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	for s != "" {
		if len(parts) == max {
			parts = append(parts, strings.TrimRightFunc(s, unicode.IsSpace))
			break
		}
		i := strings.IndexFunc(s, unicode.IsSpace)
		if i < 0 {
			parts = append(parts, s)
			break
		}
		parts = append(parts, s[:i])
		s = strings.TrimLeftFunc(s[i:], unicode.IsSpace)
	}
	return parts
}
