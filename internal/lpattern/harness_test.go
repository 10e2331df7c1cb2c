package lpattern

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The test harness: a case is a call of string.find, string.match,
// string.gmatch or string.gsub written as one line of testdata/corpus.txt,
//
//	gsub "hello world" "(o)" "[%1]" => "hell[o] w[o]rld" 2
//
// Arguments are Go-quoted strings, numbers, true/false/nil, a table
// {key=value ...} or func:NAME (a gsub replacement function, see F in
// testdata/runner.lua). After "=>" comes what the call returns, in the same
// notation; gmatch lists each iteration's values in brackets; a raised
// error reads: error "message". eval computes that text with this package,
// and runLua51 with the lua5.1 interpreter.

type valueKind int

const (
	vString valueKind = iota
	vNumber
	vBool
	vNil
	vTable
	vFunc
)

type value struct {
	kind  valueKind
	s     string // vString; vFunc: the function's name
	n     float64
	b     bool
	table []entry
}

type entry struct{ key, val value }

type testCase struct {
	line  int // in the corpus file, 0 for generated cases
	fn    string
	args  []value
	input string // the text before "=>"
	want  string // the text after "=>", or "" if the file has none yet
	has   bool   // the line has "=>"
}

func (c *testCase) String() string {
	if c.line > 0 {
		return fmt.Sprintf("line %d: %s", c.line, c.input)
	}
	return c.input
}

// quote writes s as a Go string literal, escaping the same bytes the Lua
// runner escapes, so the two sides print identical text.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// formatNumber prints n as Lua 5.1's tostring does ("%.14g").
func formatNumber(n float64) string {
	if n == math.Trunc(n) && math.Abs(n) < 1e15 {
		return strconv.FormatInt(int64(n), 10)
	}
	return strconv.FormatFloat(n, 'g', 14, 64)
}

func formatValue(v value) string {
	switch v.kind {
	case vString:
		return quote(v.s)
	case vNumber:
		return formatNumber(v.n)
	case vBool:
		return strconv.FormatBool(v.b)
	case vNil:
		return "nil"
	case vFunc:
		return "func:" + v.s
	case vTable:
		parts := make([]string, len(v.table))
		for i, e := range v.table {
			parts[i] = formatValue(e.key) + "=" + formatValue(e.val)
		}
		return "{" + strings.Join(parts, " ") + "}"
	}
	panic("unknown value kind")
}

// parseValue reads one argument from the front of s.
func parseValue(s string) (value, string, error) {
	s = strings.TrimLeft(s, " ")
	switch {
	case s == "":
		return value{}, "", fmt.Errorf("missing value")
	case s[0] == '"':
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return value{}, "", fmt.Errorf("bad string %.20q: %w", s, err)
		}
		u, _ := strconv.Unquote(q)
		return value{kind: vString, s: u}, s[len(q):], nil
	case s[0] == '{':
		t := value{kind: vTable}
		s = strings.TrimLeft(s[1:], " ")
		for !strings.HasPrefix(s, "}") {
			k, rest, err := parseValue(s)
			if err != nil {
				return value{}, "", err
			}
			rest = strings.TrimLeft(rest, " ")
			if !strings.HasPrefix(rest, "=") {
				return value{}, "", fmt.Errorf("table entry without '='")
			}
			v, rest, err := parseValue(rest[1:])
			if err != nil {
				return value{}, "", err
			}
			t.table = append(t.table, entry{k, v})
			s = strings.TrimLeft(rest, " ")
			if s == "" {
				return value{}, "", fmt.Errorf("unclosed table")
			}
		}
		return t, s[1:], nil
	}
	end := strings.IndexAny(s, " =}")
	if end < 0 {
		end = len(s)
	}
	word, rest := s[:end], s[end:]
	switch {
	case word == "true" || word == "false":
		return value{kind: vBool, b: word == "true"}, rest, nil
	case word == "nil":
		return value{kind: vNil}, rest, nil
	case word == "table":
		return value{kind: vTable}, rest, nil
	case strings.HasPrefix(word, "func:"):
		return value{kind: vFunc, s: word[5:]}, rest, nil
	}
	n, err := strconv.ParseFloat(word, 64)
	if err != nil {
		return value{}, "", fmt.Errorf("bad value %q", word)
	}
	return value{kind: vNumber, n: n}, rest, nil
}

func parseCase(text string, line int) (*testCase, error) {
	input, want, has := strings.Cut(text, "=>")
	c := &testCase{line: line, input: strings.TrimSpace(input), want: strings.TrimSpace(want), has: has}
	fn, rest, _ := strings.Cut(c.input, " ")
	switch fn {
	case "find", "match", "gmatch", "gsub":
	default:
		return nil, fmt.Errorf("line %d: unknown function %q", line, fn)
	}
	c.fn = fn
	for strings.TrimSpace(rest) != "" {
		v, r, err := parseValue(rest)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		c.args = append(c.args, v)
		rest = r
	}
	if len(c.args) < 2 || c.args[0].kind != vString || c.args[1].kind != vString {
		return nil, fmt.Errorf("line %d: want a subject and a pattern", line)
	}
	return c, nil
}

// readCorpus returns the corpus file's lines and the cases among them.
func readCorpus(t testing.TB, path string) ([]string, []*testCase) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cases []*testCase
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		lines = append(lines, text)
		if trimmed := strings.TrimSpace(text); trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		c, err := parseCase(text, n)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	return lines, cases
}

// harnessCache serves find and gmatch, so the corpus runs through a Cache
// as well as through Compile (match, gsub).
var harnessCache = NewCache(16)

// eval runs c with this package, as a string library built on it would,
// and returns the result text.
func eval(c *testCase, opts *Options) string {
	out, err := evalValues(c, opts)
	if err != nil {
		return "error " + quote(err.Error())
	}
	return out
}

func arg(c *testCase, i int) value {
	if i < len(c.args) {
		return c.args[i]
	}
	return value{kind: vNil}
}

func capValue(subject string, cp Capture) string {
	if cp.Kind == CapPosition {
		return strconv.Itoa(cp.Start + 1)
	}
	return quote(subject[cp.Start:cp.End])
}

// pushValues formats what push_captures pushes for m.
func pushValues(subject string, m *Match, whole bool) ([]string, error) {
	var out []string
	for i := 0; i < m.Count(whole); i++ {
		cp, err := m.Get(i)
		if err != nil {
			return nil, err
		}
		out = append(out, capValue(subject, cp))
	}
	return out, nil
}

func evalValues(c *testCase, opts *Options) (string, error) {
	s, pat := c.args[0].s, c.args[1].s
	switch c.fn {
	case "find", "match":
		init := int64(1)
		if a := arg(c, 2); a.kind == vNumber {
			init = int64(a.n)
		}
		off := InitOffset(init, len(s))
		var m *Match
		var err error
		if c.fn == "find" {
			a := arg(c, 3)
			plain := a.kind != vNil && !(a.kind == vBool && !a.b)
			m, err = harnessCache.Find(s, pat, off, plain, opts)
		} else {
			m, err = Compile(pat).Find(s, off, opts)
		}
		if err != nil {
			return "", err
		}
		if m == nil {
			return "nil", nil
		}
		var vals []string
		if c.fn == "find" {
			vals = append(vals, strconv.Itoa(m.Start+1), strconv.Itoa(m.End))
		}
		caps, err := pushValues(s, m, c.fn == "match")
		if err != nil {
			return "", err
		}
		return strings.Join(append(vals, caps...), " "), nil
	case "gmatch":
		it := harnessCache.CompileGmatch(pat).Iter(s, opts)
		var groups []string
		for range 1000 {
			m, err := it.Next()
			if err != nil {
				return "", err
			}
			if m == nil {
				break
			}
			caps, err := pushValues(s, m, true)
			if err != nil {
				return "", err
			}
			groups = append(groups, "["+strings.Join(caps, " ")+"]")
		}
		return strings.Join(groups, " "), nil
	case "gsub":
		return evalGsub(c, opts)
	}
	panic("unknown function " + c.fn)
}

// evalGsub is lstrlib.c's str_gsub and add_value on top of Iter and Expand:
// the shape string.gsub built on this package takes.
func evalGsub(c *testCase, opts *Options) (string, error) {
	s, pat, repl := c.args[0].s, c.args[1].s, arg(c, 2)
	maxN := len(s) + 1
	if a := arg(c, 3); a.kind == vNumber {
		maxN = int(a.n)
	}
	it := Compile(pat).Iter(s, opts)
	var out []byte
	last, n := 0, 0
	for n < maxN {
		m, err := it.Next()
		if err != nil {
			return "", err
		}
		if m == nil {
			break
		}
		n++
		out = append(out, s[last:m.Start]...)
		last = m.End
		whole := s[m.Start:m.End]
		var v value
		switch repl.kind {
		case vString, vNumber:
			r := repl.s
			if repl.kind == vNumber {
				r = formatNumber(repl.n)
			}
			if out, err = Expand(out, r, s, m); err != nil {
				return "", err
			}
			continue
		case vTable:
			cp, err := m.Get(0)
			if err != nil {
				return "", err
			}
			v = value{kind: vNil}
			for _, e := range repl.table {
				if cp.Kind == CapPosition && e.key.kind == vNumber && int(e.key.n) == cp.Start+1 ||
					cp.Kind != CapPosition && e.key.kind == vString && e.key.s == s[cp.Start:cp.End] {
					v = e.val
				}
			}
		case vFunc:
			vals := make([]string, 0, m.Count(true))
			for i := 0; i < m.Count(true); i++ {
				cp, err := m.Get(i)
				if err != nil {
					return "", err
				}
				if cp.Kind == CapPosition {
					vals = append(vals, strconv.Itoa(cp.Start+1))
				} else {
					vals = append(vals, s[cp.Start:cp.End])
				}
			}
			switch repl.s {
			case "join":
				v = value{kind: vString, s: strings.Join(vals, ",")}
			case "nil":
				v = value{kind: vNil}
			case "false":
				v = value{kind: vBool}
			case "table":
				v = value{kind: vTable}
			case "num":
				v = value{kind: vNumber, n: 42}
			default:
				panic("unknown replacement function " + repl.s)
			}
		default:
			panic("bad replacement kind")
		}
		switch v.kind {
		case vNil:
			out = append(out, whole...)
		case vBool:
			if !v.b {
				out = append(out, whole...)
				continue
			}
			return "", fmt.Errorf("invalid replacement value (a boolean)")
		case vString:
			out = append(out, v.s...)
		case vNumber:
			out = append(out, formatNumber(v.n)...)
		case vTable:
			return "", fmt.Errorf("invalid replacement value (a table)")
		}
	}
	out = append(out, s[last:]...)
	return quote(string(out)) + " " + strconv.Itoa(n), nil
}

//go:embed testdata/runner.lua
var runnerLua string

// luaLiteral writes v as Lua 5.1 source.
func luaLiteral(v value) string {
	switch v.kind {
	case vString:
		var b strings.Builder
		b.WriteByte('"')
		for i := 0; i < len(v.s); i++ {
			c := v.s[i]
			if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				fmt.Fprintf(&b, `\%03d`, c)
			} else {
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
		return b.String()
	case vNumber:
		return strconv.FormatFloat(v.n, 'g', -1, 64)
	case vBool:
		return strconv.FormatBool(v.b)
	case vNil:
		return "nil"
	case vFunc:
		return fmt.Sprintf("F[%q]", v.s)
	case vTable:
		parts := make([]string, len(v.table))
		for i, e := range v.table {
			parts[i] = "[" + luaLiteral(e.key) + "]=" + luaLiteral(e.val)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	panic("unknown value kind")
}

// lua51 returns the path of the reference interpreter, skipping the test
// when it is missing.
func lua51(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("lua5.1")
	if err != nil {
		t.Skip("lua5.1 is not on PATH: the reference comparison needs the Lua 5.1 interpreter (apt-get install lua5.1; .ci/run installs it)")
	}
	return path
}

// runLua51 runs the cases through the reference interpreter and returns
// each one's result text.
func runLua51(t testing.TB, cases []*testCase) []string {
	t.Helper()
	path := lua51(t)
	var script strings.Builder
	script.WriteString(runnerLua)
	script.WriteString("RUN{\n")
	for _, c := range cases {
		parts := make([]string, len(c.args))
		for i, a := range c.args {
			parts[i] = luaLiteral(a)
		}
		fmt.Fprintf(&script, "{%q, {%s}, %d},\n", c.fn, strings.Join(parts, ", "), len(c.args))
	}
	script.WriteString("}\n")
	cmd := exec.Command(path, "-")
	cmd.Stdin = strings.NewReader(script.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lua5.1: %v\n%s", err, stderr.String())
	}
	results := make([]string, len(cases))
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		num, res, ok := strings.Cut(line, "\t")
		i, err := strconv.Atoi(num)
		if !ok || err != nil || i < 1 || i > len(cases) {
			t.Fatalf("lua5.1 printed an unexpected line %q", line)
		}
		results[i-1] = res
	}
	return results
}
