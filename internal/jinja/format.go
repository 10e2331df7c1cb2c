package jinja

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxWidth bounds a %-format width or precision, so "%999999999s" cannot
// allocate a gigabyte before the output limit is checked.
const maxWidth = 10000

// pyFormat is Python's "format % args" (the % operator on strings and the
// format filter): args is a list (a tuple), a map (for %(name)s) or one
// value. With escapeArgs (the format string is Markup), %s and %r escape
// arguments that are not Markup themselves.
func pyFormat(format string, args any, escapeArgs bool, max int, toStr func(any) (string, error)) (string, error) {
	var tuple []any
	mapping, isMap := args.(map[string]any)
	switch x := args.(type) {
	case []any:
		tuple = x
	default:
		tuple = []any{x}
	}
	usesNames := strings.Contains(format, "%(")
	if isMap && !usesNames {
		tuple = []any{args}
	}
	next := 0
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", errors.New("incomplete format: a % at the end")
		}
		if format[i] == '%' {
			b.WriteByte('%')
			continue
		}
		var arg any
		haveArg := false
		if format[i] == '(' {
			end := strings.IndexByte(format[i:], ')')
			if end < 0 {
				return "", errors.New("incomplete format key: ( without )")
			}
			key := format[i+1 : i+end]
			i += end + 1
			if !isMap {
				return "", errors.New("format requires a mapping for %(" + key + ")")
			}
			v, ok := mapping[key]
			if !ok {
				return "", fmt.Errorf("format key %q is missing", key)
			}
			arg, haveArg = norm(v), true
		}
		// flags, width, precision, length modifier
		flags := ""
		for i < len(format) && strings.IndexByte("-+ #0", format[i]) >= 0 {
			flags += string(format[i])
			i++
		}
		width, i2, err := formatNumber(format, i)
		if err != nil {
			return "", err
		}
		i = i2
		prec := -1
		if i < len(format) && format[i] == '.' {
			if prec, i, err = formatNumber(format, i+1); err != nil {
				return "", err
			}
		}
		for i < len(format) && strings.IndexByte("hlL", format[i]) >= 0 {
			i++
		}
		if i >= len(format) {
			return "", errors.New("incomplete format")
		}
		verb := format[i]
		if !haveArg {
			if isMap && usesNames {
				return "", errors.New("format mixes %(name) and positional conversions")
			}
			if next >= len(tuple) {
				return "", errors.New("not enough arguments for format string")
			}
			arg = norm(tuple[next])
			next++
		}
		s, err := formatOne(verb, flags, width, prec, arg, escapeArgs, toStr)
		if err != nil {
			return "", err
		}
		if b.Len()+len(s) > max {
			return "", ErrOutputTooLarge
		}
		b.WriteString(s)
	}
	if !(isMap && usesNames) && next < len(tuple) {
		return "", errors.New("not all arguments converted during string formatting")
	}
	return b.String(), nil
}

// formatNumber reads an optional decimal number at format[i:].
func formatNumber(format string, i int) (int, int, error) {
	start := i
	for i < len(format) && isDigit(format[i]) {
		i++
	}
	if i == start {
		return 0, i, nil
	}
	n, err := strconv.Atoi(format[start:i])
	if err != nil || n > maxWidth {
		return 0, i, fmt.Errorf("format width or precision %s is larger than %d", format[start:i], maxWidth)
	}
	return n, i, nil
}

func formatOne(verb byte, flags string, width, prec int, arg any, escapeArgs bool, toStr func(any) (string, error)) (string, error) {
	var s string
	switch verb {
	case 's', 'r', 'a':
		switch arg.(type) {
		case []any, map[string]any:
			// str and repr of a container are the same; toStr counts its
			// elements.
			var err error
			if s, err = toStr(arg); err != nil {
				return "", err
			}
		default:
			if verb == 's' {
				s = str(arg)
			} else {
				s = repr(arg)
			}
		}
		if escapeArgs {
			if _, ok := arg.(Markup); !ok {
				s = escapeHTML(s)
			}
		}
		if prec >= 0 && utf8.RuneCountInString(s) > prec {
			s = string([]rune(s)[:prec])
		}
		return pad(s, flags, width), nil
	case 'd', 'i', 'u':
		n, err := toInt(arg, verb)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%"+flags+widthSpec(width, -1)+"d", n), nil
	case 'x', 'X', 'o':
		n, err := toInt(arg, verb)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%"+flags+widthSpec(width, -1)+string(verb), n), nil
	case 'f', 'F', 'e', 'E', 'g', 'G':
		if !isNumber(arg) {
			if _, ok := arg.(bool); !ok {
				return "", fmt.Errorf("%%%c format: a real number is required, not %s", verb, typeName(arg))
			}
		}
		if prec < 0 {
			prec = 6
		}
		v := verb
		if v == 'F' {
			v = 'f'
		}
		f := toFloat(arg)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return pad(pyFloat(f), flags, width), nil
		}
		return fmt.Sprintf("%"+flags+widthSpec(width, prec)+string(v), f), nil
	case 'c':
		switch x := arg.(type) {
		case int64:
			if x < 0 || x > utf8.MaxRune {
				return "", errors.New("%c arg not in range")
			}
			return pad(string(rune(x)), flags, width), nil
		case string:
			if utf8.RuneCountInString(x) == 1 {
				return pad(x, flags, width), nil
			}
		}
		return "", errors.New("%c requires an integer or a single character")
	}
	return "", fmt.Errorf("unsupported format character %q", verb)
}

func widthSpec(width, prec int) string {
	s := ""
	if width > 0 {
		s = strconv.Itoa(width)
	}
	if prec >= 0 {
		s += "." + strconv.Itoa(prec)
	}
	return s
}

func pad(s, flags string, width int) string {
	n := utf8.RuneCountInString(s)
	if n >= width {
		return s
	}
	if strings.Contains(flags, "-") {
		return s + strings.Repeat(" ", width-n)
	}
	return strings.Repeat(" ", width-n) + s
}

func toInt(v any, verb byte) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) || math.Abs(x) >= 1<<63 {
			return 0, fmt.Errorf("cannot convert %s to an integer", pyFloat(x))
		}
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%%%c format: a number is required, not %s", verb, typeName(v))
}

// strftime formats t like C's strftime in the C locale (Python's
// time.strftime on Linux), for format_ts. A "-" after % drops the padding
// of a number (glibc's %-d).
func strftime(format string, t time.Time) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", errors.New("format ends with a lone %")
		}
		noPad := false
		if format[i] == '-' {
			noPad = true
			i++
			if i >= len(format) {
				return "", errors.New("format ends with %-")
			}
		}
		num := func(n, width int, padChar byte) {
			s := strconv.Itoa(n)
			if !noPad {
				for len(s) < width {
					s = string(padChar) + s
				}
			}
			b.WriteString(s)
		}
		switch format[i] {
		case '%':
			b.WriteByte('%')
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'c':
			b.WriteString(t.Format("Mon Jan _2 15:04:05 2006"))
		case 'd':
			num(t.Day(), 2, '0')
		case 'e':
			num(t.Day(), 2, ' ')
		case 'H':
			num(t.Hour(), 2, '0')
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			num(h, 2, '0')
		case 'j':
			num(t.YearDay(), 3, '0')
		case 'm':
			num(int(t.Month()), 2, '0')
		case 'M':
			num(t.Minute(), 2, '0')
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'S':
			num(t.Second(), 2, '0')
		case 'w':
			num(int(t.Weekday()), 1, '0')
		case 'y':
			num(t.Year()%100, 2, '0')
		case 'Y':
			num(t.Year(), 1, '0')
		case 'x':
			b.WriteString(t.Format("01/02/06"))
		case 'X':
			b.WriteString(t.Format("15:04:05"))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'R':
			b.WriteString(t.Format("15:04"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		default:
			return "", fmt.Errorf("unsupported strftime directive %%%c", format[i])
		}
	}
	return b.String(), nil
}
