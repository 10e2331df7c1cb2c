package lpattern

import "strings"

// MaxCaptures is Lua 5.1's LUA_MAXCAPTURES: a pattern may open at most this
// many captures.
const MaxCaptures = 32

type opcode uint8

const (
	opEnd       opcode = iota // end of pattern: success
	opEndAnchor               // final '$': success only at the subject's end
	opSingle                  // one-character class, maybe with a quantifier
	opLiteral                 // a run of unquantified literal bytes
	opOpen                    // '('
	opPosition                // '()'
	opClose                   // ')'
	opBackref                 // %1-%9
	opBalance                 // %bxy
	opFrontier                // %f[set]
	opError                   // a malformed part: raise the pattern's err when reached
)

// item is one pattern item. It is kept small (40 bytes) because a pattern
// compiles to about one item per byte, on every call that is not cached: a
// hostile megabyte of "." must not cost much more than its size.
type item struct {
	op    opcode
	quant byte     // opSingle: 0, '?', '*', '+' or '-'
	c, c2 byte     // opBalance: the two delimiters
	next  int16    // opSingle: the byte the following literal needs, or -1
	idx   int32    // capture index (opOpen, opPosition, opClose, opBackref)
	set   *byteSet // opSingle, opFrontier: shared unless it is a [set]
	lit   string   // opLiteral
}

// Pattern is a compiled Lua pattern. It is immutable, so one Pattern may be
// used by many goroutines at once and cached by its source text.
type Pattern struct {
	source   string
	anchored bool
	items    []item
	ncap     int                      // captures the pattern opens
	kinds    [MaxCaptures]CaptureKind // what each capture holds when the match ends
	err      *Error                   // the error opError raises, if the pattern has one
	lead     int                      // leading items that consume nothing (captures)
}

// Compile compiles pat as string.find, string.match and string.gsub read
// it: a leading '^' anchors the match at its start. Compile never fails:
// like Lua 5.1, a malformed pattern raises its error only when matching
// reaches the malformed part (see Err). The pattern ends at its first NUL
// byte, as it does for lstrlib.c, which reads patterns as C strings.
func Compile(pat string) *Pattern { return compile(pat, true) }

// CompileGmatch compiles pat as Lua 5.1's string.gmatch reads it: there a
// leading '^' is an ordinary character, not an anchor.
func CompileGmatch(pat string) *Pattern { return compile(pat, false) }

// Source returns the text the pattern was compiled from.
func (p *Pattern) Source() string { return p.source }

// Anchored reports whether the pattern only matches at the starting offset.
func (p *Pattern) Anchored() bool { return p.anchored }

// Err returns the error the pattern raises if matching ever reaches its
// malformed part, or nil. Lua raises it lazily; a caller that wants to
// reject bad patterns up front (a linter, a config check) can use this.
func (p *Pattern) Err() error {
	if p.err == nil {
		return nil
	}
	return p.err
}

func compile(source string, anchors bool) *Pattern {
	pat := source
	if k := strings.IndexByte(pat, 0); k >= 0 {
		pat = pat[:k]
	}
	p := &Pattern{source: source}
	if anchors && len(pat) > 0 && pat[0] == '^' {
		p.anchored = true
		pat = pat[1:]
	}
	// A pattern has at most one item per byte, plus its end. A short one is
	// built in a buffer on the stack and copied out at its exact size
	// (patterns are compiled per call, so allocations count); a long one
	// is built where it will stay.
	if len(pat) < 24 {
		var buf [24]item
		p.items = append([]item(nil), p.build(pat, buf[:0])...)
	} else {
		p.items = p.build(pat, make([]item, 0, len(pat)+1))
	}
	for i := range p.items {
		it := &p.items[i]
		if it.op == opSingle && it.quant != 0 && p.items[i+1].op == opLiteral {
			it.next = int16(p.items[i+1].lit[0])
		}
	}
	for p.lead < len(p.items) && (p.items[p.lead].op == opOpen || p.items[p.lead].op == opPosition) {
		p.lead++
	}
	return p
}

// build appends pat's items to items and returns them, setting p's
// captures and error.
func (p *Pattern) build(pat string, items []item) []item {
	kinds := &p.kinds
	level := 0
	fail := func(e *Error) {
		items = append(items, item{op: opError})
		p.err = e
	}
	for i := 0; ; {
		if i >= len(pat) {
			items = append(items, item{op: opEnd})
			break
		}
		switch pat[i] {
		case '(':
			if level >= MaxCaptures {
				fail(errTooManyCaptures)
				goto done
			}
			if i+1 < len(pat) && pat[i+1] == ')' {
				items = append(items, item{op: opPosition, idx: int32(level)})
				kinds[level] = CapPosition
				i += 2
			} else {
				items = append(items, item{op: opOpen, idx: int32(level)})
				kinds[level] = CapUnfinished
				i++
			}
			level++
			continue
		case ')':
			// The innermost capture still open, as capture_to_close finds it.
			l := level - 1
			for l >= 0 && kinds[l] != CapUnfinished {
				l--
			}
			if l < 0 {
				fail(errPatternCapture)
				goto done
			}
			kinds[l] = CapString
			items = append(items, item{op: opClose, idx: int32(l)})
			i++
			continue
		case '$':
			if i+1 == len(pat) {
				items = append(items, item{op: opEndAnchor})
				goto done
			}
		case '%':
			if i+1 >= len(pat) {
				break // classEnd reports it
			}
			switch d := pat[i+1]; {
			case d == 'b':
				if i+3 >= len(pat) {
					fail(errUnbalanced)
					goto done
				}
				items = append(items, item{op: opBalance, c: pat[i+2], c2: pat[i+3]})
				i += 4
				continue
			case d == 'f':
				j := i + 2
				if j >= len(pat) || pat[j] != '[' {
					fail(errMissingFrontier)
					goto done
				}
				end, err := classEnd(pat, j)
				if err != nil {
					fail(err)
					goto done
				}
				set := bracketSet(pat, j, end-1)
				items = append(items, item{op: opFrontier, set: &set})
				i = end
				continue
			case '0' <= d && d <= '9':
				l := int(d) - '1'
				if l < 0 || l >= level || kinds[l] == CapUnfinished {
					fail(errCaptureIndex)
					goto done
				}
				items = append(items, item{op: opBackref, idx: int32(l)})
				i += 2
				continue
			}
		}
		end, err := classEnd(pat, i)
		if err != nil {
			fail(err)
			goto done
		}
		it := item{op: opSingle, set: itemSet(pat, i, end), next: -1}
		if end == i+1 && pat[i] != '.' && pat[i] != '[' {
			it.idx = int32(i + 1) // where the plain byte is, for mergeLiterals
		}
		i = end
		if i < len(pat) {
			switch q := pat[i]; q {
			case '?', '*', '+', '-':
				it.quant = q
				i++
			}
		}
		items = append(items, it)
	}
done:
	p.ncap = level
	return mergeLiterals(items, pat)
}

// mergeLiterals turns each run of unquantified one-byte items into one
// opLiteral, which the matcher compares in one go. A run written as plain
// bytes is a slice of pat; one with escapes ("%.") is built.
func mergeLiterals(items []item, pat string) []item {
	out := items[:0]
	for i := 0; i < len(items); {
		j := i
		for j < len(items) && isLiteral(&items[j]) {
			j++
		}
		if j == i {
			out = append(out, items[i])
			i++
			continue
		}
		var lit string
		if contiguous(items[i:j]) {
			lit = pat[items[i].idx-1 : items[j-1].idx]
		} else {
			b := make([]byte, j-i)
			for k := range b {
				b[k], _ = items[i+k].set.single()
			}
			lit = string(b)
		}
		out = append(out, item{op: opLiteral, lit: lit})
		i = j
	}
	return out
}

func isLiteral(it *item) bool {
	if it.op != opSingle || it.quant != 0 {
		return false
	}
	_, ok := it.set.single()
	return ok
}

// contiguous reports whether items are plain bytes side by side in the
// pattern (each item's idx is its offset plus one, or 0).
func contiguous(items []item) bool {
	for k := 1; k < len(items); k++ {
		if items[k-1].idx == 0 || items[k].idx != items[k-1].idx+1 {
			return false
		}
	}
	return items[0].idx > 0
}
