package lint

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/yuin/gopher-lua/parse"
)

// The tree has lines but neither columns nor comments, so the source is
// scanned once more with gopher-lua's own scanner: its tokens give the
// columns, and the bytes between tokens (only blanks and comments, by
// construction) give the luahost:ignore comments. No guessing about what
// is inside a string.

type token struct {
	typ int
	str string
	col int
}

type scanned struct {
	toks    map[int][]token          // tokens of the lines that have findings
	names   map[int]map[string][]int // index in toks of each name, by line
	ignores map[int]map[string]bool
	bad     []Warning
}

// ignored reports whether a luahost:ignore comment silences code on line.
func (s *scanned) ignored(line int, code string) bool {
	codes, ok := s.ignores[line]
	return ok && (len(codes) == 0 || codes[code])
}

// column finds the name path (a, a.b, a:b ...) on line and returns the
// column of its first name when it occurs exactly once there, else 0.
func (s *scanned) column(line int, path []string) int {
	toks := s.toks[line]
	col, n := 0, 0
	for _, i := range s.names[line][path[0]] {
		if i > 0 && (toks[i-1].typ == '.' || toks[i-1].typ == ':') {
			continue // a field named like the root
		}
		match := true
		for k := 1; k < len(path); k++ {
			j := i + 2*k
			if j >= len(toks) || toks[j-1].typ != '.' && toks[j-1].typ != ':' ||
				toks[j].typ != parse.TIdent || toks[j].str != path[k] {
				match = false
				break
			}
		}
		if match {
			col, n = toks[i].col, n+1
		}
	}
	if n != 1 {
		return 0
	}
	return col
}

const ignoreMark = "luahost:ignore"

func scan(src []byte, name string, want map[int]bool) (*scanned, error) {
	s := &scanned{toks: map[int][]token{}, names: map[int]map[string][]int{}, ignores: map[int]map[string]bool{}}
	starts := lineStarts(src)
	offset := func(line, col int) int { return starts[line] + col }
	lineOf := func(off int) int { return sort.Search(len(starts)-1, func(i int) bool { return starts[i+1] > off }) }

	sc := parse.NewScanner(bytes.NewReader(src), name)
	lx := &parse.Lexer{}
	prevEnd, prevLine := 0, 0
	for {
		tok, err := sc.Scan(lx)
		if err != nil {
			return nil, err
		}
		end := len(src)
		if tok.Type != parse.EOF {
			end = offset(tok.Pos.Line, tok.Pos.Column-1)
		}
		s.comments(src[prevEnd:end], prevEnd, prevLine, lineOf)
		if tok.Type == parse.EOF {
			return s, nil
		}
		if line := tok.Pos.Line; want[line] {
			if tok.Type == parse.TIdent {
				if s.names[line] == nil {
					s.names[line] = map[string][]int{}
				}
				s.names[line][tok.Str] = append(s.names[line][tok.Str], len(s.toks[line]))
			}
			s.toks[line] = append(s.toks[line], token{typ: tok.Type, str: tok.Str, col: tok.Pos.Column})
		}
		// The scanner stops on the token's last byte (or, for a number
		// such as "1e" at the very end, past the end).
		if sc.Pos.Line == parse.EOF {
			prevEnd, prevLine = len(src), len(starts)-1
		} else {
			prevEnd, prevLine = offset(sc.Pos.Line, sc.Pos.Column), sc.Pos.Line
		}
	}
}

// lineStarts gives the offset each line starts at (index = line number),
// counting newlines as gopher-lua's scanner does: \n, \r, \r\n and \n\r
// are one each.
func lineStarts(src []byte) []int {
	starts := []int{0, 0}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\n' && c != '\r' {
			continue
		}
		if i+1 < len(src) && (c == '\n' && src[i+1] == '\r' || c == '\r' && src[i+1] == '\n') {
			i++
		}
		starts = append(starts, i+1)
	}
	return starts
}

// comments reads the comments in gap (blanks and comments between two
// tokens, starting at offset base; the previous token ended on prevLine).
func (s *scanned) comments(gap []byte, base, prevLine int, lineOf func(int) int) {
	for i := 0; i+1 < len(gap); i++ {
		if gap[i] != '-' || gap[i+1] != '-' {
			continue
		}
		start := i
		i += 2
		if lvl, ok := longBracket(gap[i:]); ok {
			closing := "]" + strings.Repeat("=", lvl) + "]"
			if k := bytes.Index(gap[i:], []byte(closing)); k >= 0 {
				i += k + len(closing) - 1
			} else {
				i = len(gap)
			}
			continue // block comments carry no directives
		}
		k := bytes.IndexAny(gap[i:], "\r\n")
		if k < 0 {
			k = len(gap) - i
		}
		line := lineOf(base + start)
		target := line
		if prevLine < line {
			target = line + 1 // alone on its line: about the next one
		}
		s.directive(string(gap[i:i+k]), line, target)
		i += k
	}
}

// longBracket reports whether b starts with [[ or [=*[ and its level.
func longBracket(b []byte) (int, bool) {
	if len(b) == 0 || b[0] != '[' {
		return 0, false
	}
	n := 1
	for n < len(b) && b[n] == '=' {
		n++
	}
	return n - 1, n < len(b) && b[n] == '['
}

// directive reads one comment's text (after --).
func (s *scanned) directive(text string, line, target int) {
	text = strings.TrimLeft(text, "- \t")
	rest, ok := strings.CutPrefix(text, ignoreMark)
	if !ok || rest != "" && rest[0] != ' ' && rest[0] != '\t' && rest[0] != ',' {
		return
	}
	if i := strings.Index(rest, "--"); i >= 0 {
		rest = rest[:i] // the reason
	}
	codes := map[string]bool{}
	for _, c := range strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		if !isCode(c) {
			msg := fmt.Sprintf("unknown warning code %q in %s", c, ignoreMark)
			if sug := Suggest(c, Codes()); sug != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", sug)
			}
			s.bad = append(s.bad, Warning{Line: line, Code: CodeBadIgnore, Msg: msg})
		}
		codes[c] = true // an unknown one too: it must not widen into "every code"
	}
	old, seen := s.ignores[target]
	switch {
	case seen && len(old) == 0:
		// an earlier bare ignore already covers everything
	case seen && len(codes) > 0:
		for c := range codes {
			old[c] = true
		}
	default:
		s.ignores[target] = codes // empty: every code
	}
}

func isCode(c string) bool {
	for _, k := range Codes() {
		if c == k {
			return true
		}
	}
	return false
}
