package jinja

import (
	"fmt"
	"strings"
)

type tokKind int

const (
	tText       tokKind = iota
	tVarBegin           // {{
	tVarEnd             // }}
	tBlockBegin         // {%
	tBlockEnd           // %}
	tName
	tString
	tInt
	tFloat
	tOp
	tEOF
)

func (k tokKind) String() string {
	switch k {
	case tText:
		return "text"
	case tVarBegin:
		return `"{{"`
	case tVarEnd:
		return `"}}"`
	case tBlockBegin:
		return `"{%"`
	case tBlockEnd:
		return `"%}"`
	case tName:
		return "name"
	case tString:
		return "string"
	case tInt:
		return "integer"
	case tFloat:
		return "number"
	case tOp:
		return "operator"
	default:
		return "end of template"
	}
}

type token struct {
	kind tokKind
	val  string // text, name, operator, or a string literal's decoded value
	line int
}

func (t token) String() string {
	switch t.kind {
	case tName, tOp, tInt, tFloat:
		return fmt.Sprintf("%q", t.val)
	case tString:
		return "string " + pyRepr(t.val)
	default:
		return t.kind.String()
	}
}

// lexer splits a template into text and the tokens of its tags, with Jinja's
// default delimiters and whitespace control ("{%-" strips the whitespace
// before the tag, "-%}" the whitespace after it; the same for {{ }} and {# #}).
type lexer struct {
	name string
	src  string
	pos  int
	line int
	toks []token
}

const whitespace = " \t\n\r\f\v"

func lex(name, src string) ([]token, error) {
	// Jinja's defaults: newlines normalised to \n, and one trailing newline
	// removed (keep_trailing_newline=False).
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	src = strings.TrimSuffix(src, "\n")
	l := &lexer{name: name, src: src, line: 1}
	if err := l.run(); err != nil {
		return nil, err
	}
	l.toks = append(l.toks, token{kind: tEOF, line: l.line})
	return l.toks, nil
}

func (l *lexer) errorf(line int, format string, args ...any) error {
	return &Error{File: l.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// advance moves pos to p, counting the newlines passed.
func (l *lexer) advance(p int) {
	l.line += strings.Count(l.src[l.pos:p], "\n")
	l.pos = p
}

// skipSpace moves past whitespace (after a "-" end delimiter).
func (l *lexer) skipSpace() {
	p := l.pos
	for p < len(l.src) && strings.IndexByte(whitespace, l.src[p]) >= 0 {
		p++
	}
	l.advance(p)
}

func (l *lexer) emitText(text string, line int) {
	if text != "" {
		l.toks = append(l.toks, token{kind: tText, val: text, line: line})
	}
}

// nextTag finds the next "{{", "{%" or "{#" at or after pos.
func (l *lexer) nextTag() int {
	for i := l.pos; ; {
		j := strings.IndexByte(l.src[i:], '{')
		if j < 0 || i+j+1 >= len(l.src) {
			return -1
		}
		switch l.src[i+j+1] {
		case '{', '%', '#':
			return i + j
		}
		i += j + 1
	}
}

func (l *lexer) run() error {
	for l.pos < len(l.src) {
		start := l.nextTag()
		if start < 0 {
			l.emitText(l.src[l.pos:], l.line)
			l.advance(len(l.src))
			return nil
		}
		text, textLine := l.src[l.pos:start], l.line
		kind := l.src[start+1]
		open := start + 2
		if open < len(l.src) && l.src[open] == '-' {
			text = strings.TrimRight(text, whitespace)
			open++
		} else if open < len(l.src) && l.src[open] == '+' {
			open++ // "+" disables lstrip_blocks, which is off anyway
		}
		l.emitText(text, textLine)
		l.advance(start)
		tagLine := l.line
		l.advance(open)
		switch kind {
		case '#':
			if err := l.comment(tagLine, open); err != nil {
				return err
			}
		case '{':
			if err := l.tag(tagLine, tVarBegin, tVarEnd, "}}"); err != nil {
				return err
			}
		case '%':
			if err := l.tag(tagLine, tBlockBegin, tBlockEnd, "%}"); err != nil {
				return err
			}
			if err := l.raw(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *lexer) comment(line, open int) error {
	end := strings.Index(l.src[open:], "#}")
	if end < 0 {
		return l.errorf(line, "comment {# is never closed with #}")
	}
	end += open
	strip := end > open && l.src[end-1] == '-'
	l.advance(end + 2)
	if strip {
		l.skipSpace()
	}
	return nil
}

// tag lexes the expression tokens of a {{ }} or {% %} tag up to its end
// delimiter, which counts only outside brackets (so "{{ {'a': {}} }}" works).
func (l *lexer) tag(line int, begin, end tokKind, closer string) error {
	l.toks = append(l.toks, token{kind: begin, line: line})
	depth := 0
	for {
		l.skipSpace()
		if l.pos >= len(l.src) {
			return l.errorf(line, "%s is never closed with %s", begin, closer)
		}
		rest := l.src[l.pos:]
		if depth == 0 {
			if strings.HasPrefix(rest, "-"+closer) {
				l.toks = append(l.toks, token{kind: end, line: l.line})
				l.advance(l.pos + 3)
				l.skipSpace()
				return nil
			}
			if strings.HasPrefix(rest, closer) {
				l.toks = append(l.toks, token{kind: end, line: l.line})
				l.advance(l.pos + 2)
				return nil
			}
		}
		c := rest[0]
		switch {
		case c == '"' || c == '\'':
			s, n, err := unquote(rest)
			if err != nil {
				return l.errorf(l.line, "%v", err)
			}
			l.toks = append(l.toks, token{kind: tString, val: s, line: l.line})
			l.advance(l.pos + n)
		case isDigit(c):
			n, isFloat := scanNumber(rest)
			kind := tInt
			if isFloat {
				kind = tFloat
			}
			l.toks = append(l.toks, token{kind: kind, val: strings.ReplaceAll(rest[:n], "_", ""), line: l.line})
			l.advance(l.pos + n)
		case isNameStart(c):
			n := 1
			for n < len(rest) && isNameChar(rest[n]) {
				n++
			}
			l.toks = append(l.toks, token{kind: tName, val: rest[:n], line: l.line})
			l.advance(l.pos + n)
		default:
			op := scanOp(rest)
			if op == "" {
				return l.errorf(l.line, "unexpected character %q in a tag", rune(c))
			}
			switch op {
			case "(", "[", "{":
				depth++
			case ")", "]", "}":
				depth--
				if depth < 0 {
					return l.errorf(l.line, "unexpected %q", op)
				}
			}
			l.toks = append(l.toks, token{kind: tOp, val: op, line: l.line})
			l.advance(l.pos + len(op))
		}
	}
}

// raw turns "{% raw %}...{% endraw %}" into text: if the tag just lexed is
// exactly "raw", it is replaced by the text up to the matching endraw.
func (l *lexer) raw() error {
	n := len(l.toks)
	if n < 3 || l.toks[n-3].kind != tBlockBegin || l.toks[n-2].kind != tName || l.toks[n-2].val != "raw" || l.toks[n-1].kind != tBlockEnd {
		return nil
	}
	line := l.toks[n-3].line
	l.toks = l.toks[:n-3]
	for i := l.pos; ; {
		j := strings.Index(l.src[i:], "{%")
		if j < 0 {
			return l.errorf(line, "{%% raw %%} is never closed with {%% endraw %%}")
		}
		j += i
		p := j + 2
		strip := p < len(l.src) && l.src[p] == '-'
		if strip || (p < len(l.src) && l.src[p] == '+') {
			p++
		}
		for p < len(l.src) && strings.IndexByte(whitespace, l.src[p]) >= 0 {
			p++
		}
		if !strings.HasPrefix(l.src[p:], "endraw") {
			i = j + 2
			continue
		}
		p += len("endraw")
		for p < len(l.src) && strings.IndexByte(whitespace, l.src[p]) >= 0 {
			p++
		}
		stripAfter := strings.HasPrefix(l.src[p:], "-%}")
		if !stripAfter && !strings.HasPrefix(l.src[p:], "%}") {
			i = j + 2
			continue
		}
		text := l.src[l.pos:j]
		if strip {
			text = strings.TrimRight(text, whitespace)
		}
		l.emitText(text, l.line)
		if stripAfter {
			p += 3
		} else {
			p += 2
		}
		l.advance(p)
		if stripAfter {
			l.skipSpace()
		}
		return nil
	}
}

func isDigit(c byte) bool     { return c >= '0' && c <= '9' }
func isNameStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isNameChar(c byte) bool  { return isNameStart(c) || isDigit(c) }

// scanNumber returns the length of the number at the start of s: digits
// (with "_" separators), an optional fraction and exponent.
func scanNumber(s string) (int, bool) {
	n := 0
	digits := func() {
		for n < len(s) && (isDigit(s[n]) || (s[n] == '_' && n+1 < len(s) && isDigit(s[n+1]))) {
			n++
		}
	}
	digits()
	isFloat := false
	if n+1 < len(s) && s[n] == '.' && isDigit(s[n+1]) {
		isFloat = true
		n++
		digits()
	}
	if n < len(s) && (s[n] == 'e' || s[n] == 'E') {
		m := n + 1
		if m < len(s) && (s[m] == '+' || s[m] == '-') {
			m++
		}
		if m < len(s) && isDigit(s[m]) {
			isFloat = true
			n = m
			digits()
		}
	}
	return n, isFloat
}

var ops = []string{
	"**", "//", "==", "!=", "<=", ">=",
	"+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|",
}

func scanOp(s string) string {
	for _, op := range ops {
		if strings.HasPrefix(s, op) {
			return op
		}
	}
	return ""
}

// unquote decodes the string literal at the start of s (Python escapes) and
// returns its value and length.
func unquote(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case '\\', '\'', '"':
				b.WriteByte(e)
			case '\n':
				// a backslash-newline continues the line
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("string literal is never closed with %c", q)
}
