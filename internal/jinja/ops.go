package jinja

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

func unary(op string, v any) (any, error) {
	switch op {
	case "not":
		return !truthy(v), nil
	case "-":
		switch x := v.(type) {
		case int64:
			if x == math.MinInt64 {
				return -float64(x), nil
			}
			return -x, nil
		case float64:
			return -x, nil
		}
	case "+":
		if isNumber(v) {
			return v, nil
		}
	}
	return nil, operandError(op, v, nil)
}

func operandError(op string, a, b any) error {
	if u, ok := a.(*undefined); ok {
		return errors.New(u.desc)
	}
	if u, ok := b.(*undefined); ok {
		return errors.New(u.desc)
	}
	if b == nil && op != "" && (op == "-" || op == "+" || op == "not") {
		return fmt.Errorf("bad operand type for unary %s: %s", op, typeName(a))
	}
	return fmt.Errorf("unsupported operand types for %s: %s and %s", op, typeName(a), typeName(b))
}

func (r *renderer) compareOp(op string, a, b any) (bool, error) {
	switch op {
	case "==":
		return r.equal(a, b)
	case "!=":
		eq, err := r.equal(a, b)
		return !eq, err
	case "in":
		return r.contains(b, a)
	case "not in":
		ok, err := r.contains(b, a)
		return !ok, err
	}
	if u, ok := a.(*undefined); ok {
		return false, errors.New(u.desc)
	}
	if u, ok := b.(*undefined); ok {
		return false, errors.New(u.desc)
	}
	c, err := compare(a, b)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	case ">=":
		return c >= 0, nil
	}
	return false, fmt.Errorf("unknown comparison %s", op)
}

// arith evaluates the binary operators + - * / // % ** ~.
func (r *renderer) arith(op string, a, b any) (any, error) {
	if op == "~" {
		return r.concat(a, b)
	}
	if isNumber(a) && isNumber(b) {
		return numberOp(op, a, b)
	}
	switch op {
	case "+":
		if isStringish(a) && isStringish(b) {
			if err := r.checkLen(len(str(a)) + len(str(b))); err != nil {
				return nil, err
			}
			return markupJoin(a, b), nil
		}
		if x, ok := a.([]any); ok {
			if y, ok := b.([]any); ok {
				if err := r.step(len(x) + len(y)); err != nil {
					return nil, err
				}
				return append(append(make([]any, 0, len(x)+len(y)), x...), y...), nil
			}
		}
	case "*":
		if n, ok := b.(int64); ok {
			return r.repeat(a, n)
		}
		if n, ok := a.(int64); ok {
			return r.repeat(b, n)
		}
	case "%":
		if isStringish(a) {
			_, isMarkup := a.(Markup)
			s, err := pyFormat(str(a), b, isMarkup, r.opts.MaxOutputBytes, r.stringify)
			if err != nil {
				return nil, err
			}
			if isMarkup {
				return Markup(s), nil
			}
			return s, nil
		}
	}
	return nil, operandError(op, a, b)
}

// repeat is "s * n" and "list * n".
func (r *renderer) repeat(v any, n int64) (any, error) {
	if n < 0 {
		n = 0
	}
	switch x := v.(type) {
	case string, Markup:
		s := str(x)
		if len(s) > 0 && n > int64(r.opts.MaxOutputBytes/len(s)) {
			return nil, ErrOutputTooLarge
		}
		res := strings.Repeat(s, int(n))
		if _, ok := x.(Markup); ok {
			return Markup(res), nil
		}
		return res, nil
	case []any:
		if len(x) > 0 && n > int64(r.opts.MaxSteps/len(x)) {
			return nil, ErrTooManySteps
		}
		if err := r.step(len(x) * int(n)); err != nil {
			return nil, err
		}
		out := make([]any, 0, len(x)*int(n))
		for i := int64(0); i < n; i++ {
			out = append(out, x...)
		}
		return out, nil
	}
	return nil, operandError("*", v, n)
}

// concat is "~": both sides as strings. In an autoescaped template, a Markup
// side makes the result Markup with the other side escaped (Jinja's
// markup_join); otherwise it is a plain string, escaped when printed.
func (r *renderer) concat(a, b any) (any, error) {
	sa, err := r.stringify(a)
	if err != nil {
		return nil, err
	}
	sb, err := r.stringify(b)
	if err != nil {
		return nil, err
	}
	if err := r.checkLen(len(sa) + len(sb)); err != nil {
		return nil, err
	}
	if !r.autoescape {
		return sa + sb, nil
	}
	return markupJoin(a, b), nil
}

// markupJoin joins two values; when either is Markup the other is escaped
// and the result is Markup (Python's Markup.__add__).
func markupJoin(a, b any) any {
	_, ma := a.(Markup)
	_, mb := b.(Markup)
	if !ma && !mb {
		return str(a) + str(b)
	}
	return escapeValue(a) + escapeValue(b)
}

func numberOp(op string, a, b any) (any, error) {
	x, xInt := a.(int64)
	y, yInt := b.(int64)
	if xInt && yInt {
		switch op {
		case "+":
			if s := x + y; (s > x) == (y > 0) {
				return s, nil
			}
		case "-":
			if d := x - y; (d < x) == (y > 0) {
				return d, nil
			}
		case "*":
			if x == 0 || y == 0 {
				return int64(0), nil
			}
			if p := x * y; p/y == x && !(x == -1 && y == math.MinInt64) && !(y == -1 && x == math.MinInt64) {
				return p, nil
			}
		case "//":
			if y == 0 {
				return nil, errors.New("integer division by zero")
			}
			if x == math.MinInt64 && y == -1 {
				break
			}
			q := x / y
			if (x%y != 0) && ((x < 0) != (y < 0)) {
				q--
			}
			return q, nil
		case "%":
			if y == 0 {
				return nil, errors.New("integer modulo by zero")
			}
			if y == -1 {
				return int64(0), nil
			}
			m := x % y
			if m != 0 && ((m < 0) != (y < 0)) {
				m += y
			}
			return m, nil
		case "**":
			if y >= 0 {
				if p, ok := intPow(x, y); ok {
					return p, nil
				}
			}
		}
		// Overflow (Python would use a big integer): fall back to float.
	}
	f, g := toFloat(a), toFloat(b)
	switch op {
	case "+":
		return f + g, nil
	case "-":
		return f - g, nil
	case "*":
		return f * g, nil
	case "/":
		if g == 0 {
			return nil, errors.New("division by zero")
		}
		return f / g, nil
	case "//":
		if g == 0 {
			return nil, errors.New("float floor division by zero")
		}
		return math.Floor(f / g), nil
	case "%":
		if g == 0 {
			return nil, errors.New("float modulo by zero")
		}
		m := math.Mod(f, g)
		if m != 0 && ((m < 0) != (g < 0)) {
			m += g
		}
		return m, nil
	case "**":
		if f == 0 && g < 0 {
			return nil, errors.New("0.0 cannot be raised to a negative power")
		}
		return math.Pow(f, g), nil
	}
	return nil, operandError(op, a, b)
}

// intPow is x**y by squaring (at most 63 rounds), false on overflow.
func intPow(x, y int64) (int64, bool) {
	result := int64(1)
	for y > 0 {
		if y&1 == 1 {
			p := result * x
			if result != 0 && (p/result != x || (result == -1 && x == math.MinInt64)) {
				return 0, false
			}
			result = p
		}
		y >>= 1
		if y > 0 {
			sq := x * x
			if x != 0 && (sq/x != x || x == math.MinInt64) {
				return 0, false
			}
			x = sq
		}
	}
	return result, true
}
