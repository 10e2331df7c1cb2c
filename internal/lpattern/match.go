package lpattern

import "strings"

// DefaultCheckEvery is the number of steps between calls to Options.Check
// when Options.CheckEvery is zero. A step is one matcher call, one byte
// scanned by a repetition, %b or a skip ahead, or 16 bytes compared or
// searched. Steps take a few ns each, so the default calls Check every few
// µs of matching (BenchmarkCheckGap measured a median of 1-4 µs and a 99th
// percentile of 4-35 µs of CPU time over hostile and long inputs).
const DefaultCheckEvery = 1024

// DefaultMaxDepth is the default bound on nested matcher calls, Lua 5.2's
// MAXCCALLS. Each call advances through the pattern, so only patterns with
// about this many quantified items or captures can reach it.
const DefaultMaxDepth = 200

// Options bound a match. The zero value (or a nil *Options) means: no
// check, DefaultCheckEvery, DefaultMaxDepth and no step limit.
type Options struct {
	// Check, when set, is called every CheckEvery steps of matching work.
	// If it returns an error, matching stops at once and the call returns
	// that error unchanged; use it to enforce a deadline.
	Check func() error
	// CheckEvery is the number of steps between calls to Check.
	CheckEvery int
	// MaxDepth bounds nested matcher calls; past it the match fails with
	// ErrTooComplex. It also bounds the Go stack a match uses.
	MaxDepth int
	// MaxSteps, when positive, stops a call (or an Iter, over all its
	// Next calls) after that many steps with ErrStepLimit.
	MaxSteps int64
}

// CaptureKind tells what a capture holds.
type CaptureKind uint8

const (
	// CapString is a substring capture: subject[Start:End].
	CapString CaptureKind = iota
	// CapPosition is a position capture "()": Start (== End) is the 0-based
	// offset; Lua's value is the number Start+1.
	CapPosition
	// CapUnfinished is a capture whose ')' the pattern lacks. Lua 5.1 still
	// reports the match, but reading the capture raises "unfinished capture".
	CapUnfinished
)

// Capture is one capture of a match.
type Capture struct {
	Start, End int
	Kind       CaptureKind
}

// Match is a successful match: subject[Start:End], and the captures in
// the order of their '('.
type Match struct {
	Start, End int
	Caps       []Capture
	buf        [2]Capture
}

// Count returns how many values Lua pushes for m: one per capture, or, when
// the pattern has none, 1 (the whole match) if whole is true and 0 if not.
// string.find passes whole=false; string.match, string.gmatch and gsub's
// function call pass true.
func (m *Match) Count(whole bool) int {
	if len(m.Caps) == 0 && whole {
		return 1
	}
	return len(m.Caps)
}

// Get returns value i (0-based) as Lua 5.1's push_onecapture does: capture
// i, or the whole match for i == 0 when there are no captures. It fails with
// "invalid capture index" for a capture the pattern does not have and
// "unfinished capture" for one it never closes.
func (m *Match) Get(i int) (Capture, error) {
	if i >= len(m.Caps) {
		if i == 0 {
			return Capture{Start: m.Start, End: m.End}, nil
		}
		return Capture{}, errCaptureIndex
	}
	c := m.Caps[i]
	if c.Kind == CapUnfinished {
		return Capture{}, errUnfinished
	}
	return c, nil
}

// Err returns the error Lua raises when it pushes all of m's values, as
// string.find, string.match, string.gmatch and gsub's function call do:
// "unfinished capture" if a capture was never closed, else nil. (Get
// reports the same error for the capture itself.)
func (m *Match) Err() error {
	for _, c := range m.Caps {
		if c.Kind == CapUnfinished {
			return errUnfinished
		}
	}
	return nil
}

// InitOffset converts string.find's (and string.match's) init argument,
// 1-based and counting from the end when negative, to the 0-based offset
// Lua 5.1 starts at, clamped to [0, n] for a subject of n bytes.
func InitOffset(init int64, n int) int {
	if init < 0 {
		init += int64(n) + 1
	}
	init--
	if init < 0 {
		return 0
	}
	if init > int64(n) {
		return n
	}
	return int(init)
}

func clamp(i, n int) int {
	return max(0, min(i, n))
}

// HasSpecials reports whether pattern contains a character that makes
// Lua 5.1's string.find run the matcher rather than a plain search:
// one of ^$*+?.([%- before the first NUL byte.
func HasSpecials(pattern string) bool {
	if k := strings.IndexByte(pattern, 0); k >= 0 {
		pattern = pattern[:k]
	}
	return strings.ContainsAny(pattern, "^$*+?.([%-")
}

// Find does what Lua 5.1's string.find does from the 0-based offset init
// (see InitOffset): a plain substring search when plain is true or the
// pattern has no special characters (HasSpecials), else a pattern match.
// It returns nil when nothing matches. The returned Match's values are
// those string.find returns after the positions: m.Count(false) of
// m.Get(i). An init outside [0, len(subject)] is clamped.
func Find(subject, pattern string, init int, plain bool, opts *Options) (*Match, error) {
	return find(subject, pattern, init, plain, opts, Compile)
}

func find(subject, pattern string, init int, plain bool, opts *Options, compile func(string) *Pattern) (*Match, error) {
	init = clamp(init, len(subject))
	if plain || !HasSpecials(pattern) {
		k := strings.Index(subject[init:], pattern)
		if k < 0 {
			return nil, nil
		}
		return &Match{Start: init + k, End: init + k + len(pattern)}, nil
	}
	return compile(pattern).Find(subject, init, opts)
}

// Find returns the first match of p in subject that starts at or after the
// 0-based offset init (only at init if p is anchored), or nil. This is the
// search of string.find (without the plain shortcut) and string.match.
// An init outside [0, len(subject)] is clamped.
func (p *Pattern) Find(subject string, init int, opts *Options) (*Match, error) {
	init = clamp(init, len(subject))
	var m matcher
	m.reset(p, subject, opts)
	var start, end int
	if err := m.protect(func() { start, end = m.find(init) }); err != nil {
		return nil, err
	}
	if start < 0 {
		return nil, nil
	}
	r := &Match{}
	m.fill(r, start, end)
	return r, nil
}

// Iter walks the successive matches of a pattern as Lua 5.1's string.gsub
// and string.gmatch do. After a non-empty match the next search starts
// where it ended (so an empty match may follow at that very offset); after
// an empty match it starts one byte further. An anchored pattern (Compile
// of "^...", as gsub reads it) yields at most one match, at offset 0;
// compile gmatch's pattern with CompileGmatch, for which '^' is literal.
// An Iter is not safe for concurrent use.
type Iter struct {
	m    matcher
	pos  int
	done bool
	cur  Match
}

// Iter returns an iterator over p's matches in subject.
func (p *Pattern) Iter(subject string, opts *Options) *Iter {
	it := &Iter{}
	it.m.reset(p, subject, opts)
	return it
}

// Next returns the next match, or nil when there are no more. The Match
// is reused by the following call to Next. gsub copies subject[prev.End:
// m.Start] before each replacement and subject[last.End:] at the end.
func (it *Iter) Next() (*Match, error) {
	if it.done {
		return nil, nil
	}
	var start, end int
	if err := it.m.protect(func() { start, end = it.m.find(it.pos) }); err != nil {
		return nil, err
	}
	if start < 0 {
		it.done = true
		return nil, nil
	}
	switch {
	case end > start:
		it.pos = end
	case start < len(it.m.src):
		it.pos = start + 1
	default:
		it.done = true
	}
	if it.m.p.anchored {
		it.done = true
	}
	it.m.fill(&it.cur, start, end)
	return &it.cur, nil
}

// matcher is the state of one match, lstrlib.c's MatchState.
type matcher struct {
	p      *Pattern
	src    string
	items  []item
	caps   [MaxCaptures]struct{ init, len int }
	depth  int   // nested calls left
	limit  int   // Options.MaxDepth
	budget int   // steps left before the next check
	window int   // the budget the current window started with
	steps  int64 // steps done in earlier windows
	every  int
	max    int64
	check  func() error
}

// abort carries an error out of the recursion; protect turns it back into
// a return value.
type abort struct{ err error }

func (m *matcher) reset(p *Pattern, subject string, opts *Options) {
	m.p, m.src, m.items = p, subject, p.items
	m.every, m.limit = DefaultCheckEvery, DefaultMaxDepth
	if opts != nil {
		m.check, m.max = opts.Check, opts.MaxSteps
		if opts.CheckEvery > 0 {
			m.every = opts.CheckEvery
		}
		if opts.MaxDepth > 0 {
			m.limit = opts.MaxDepth
		}
	}
	m.window = m.every
	if m.max > 0 && int64(m.window) > m.max {
		m.window = int(m.max)
	}
	m.budget = m.window
}

func (m *matcher) protect(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(abort)
			if !ok {
				panic(r)
			}
			err = a.err
		}
	}()
	f()
	return nil
}

// Steps returns the steps done so far.
func (m *matcher) Steps() int64 { return m.steps + int64(m.window-m.budget) }

// tick accounts for n steps of work.
func (m *matcher) tick(n int) {
	m.budget -= n
	if m.budget < 0 {
		m.refill()
	}
}

func (m *matcher) refill() {
	m.steps += int64(m.window - m.budget)
	m.window = m.every
	if m.max > 0 {
		if m.steps > m.max {
			m.window, m.budget = 0, 0 // counted already
			panic(abort{ErrStepLimit})
		}
		m.window = int(min(int64(m.window), m.max-m.steps))
	}
	m.budget = m.window
	if m.check != nil {
		if err := m.check(); err != nil {
			panic(abort{err})
		}
	}
}

func (m *matcher) fill(r *Match, start, end int) {
	r.Start, r.End = start, end
	n := m.p.ncap
	if n <= len(r.buf) {
		r.Caps = r.buf[:n]
	} else if cap(r.Caps) >= n {
		r.Caps = r.Caps[:n]
	} else {
		r.Caps = make([]Capture, n)
	}
	for i, k := range m.p.kinds[:n] {
		c := m.caps[i]
		switch k {
		case CapString:
			r.Caps[i] = Capture{Start: c.init, End: c.init + c.len, Kind: k}
		default:
			r.Caps[i] = Capture{Start: c.init, End: c.init, Kind: k}
		}
	}
}

// find returns the first match at or after init, trying each start
// offset up to and including len(src), as do_match's caller does; -1, -1
// if none.
func (m *matcher) find(init int) (int, int) {
	n := len(m.src)
	m.depth = m.limit // afresh, even if the last search was stopped midway
	// When the first item that consumes input must match a byte, skip the
	// offsets where it cannot: trying them would fail at that item, and
	// only captures (which cannot fail for the first 32) come before it.
	var first *item
	if !m.p.anchored && m.depth > MaxCaptures+2 {
		switch it := &m.items[m.p.lead]; it.op {
		case opLiteral, opBalance:
			first = it
		case opSingle:
			if it.quant == 0 || it.quant == '+' {
				first = it
			}
		}
	}
	for s := init; s <= n; s++ {
		if first != nil {
			if s = m.skip(first, s); s > n {
				break
			}
		}
		if e := m.match(s, 0); e >= 0 {
			return s, e
		}
		if m.p.anchored {
			break
		}
	}
	return -1, -1
}

// skipChunk bounds the bytes searched between two checks.
const skipChunk = 1 << 14

// skip returns the first offset at or after s where it can start matching,
// or len(src)+1 if there is none.
func (m *matcher) skip(it *item, s int) int {
	n := len(m.src)
	if it.op == opLiteral && len(it.lit) > 1 {
		lit := it.lit
		for s+len(lit) <= n {
			end := min(n, s+skipChunk+len(lit)-1)
			if k := strings.Index(m.src[s:end], lit); k >= 0 {
				m.tick(k >> 4)
				return s + k
			}
			s = end - len(lit) + 1
			m.tick(skipChunk >> 4)
		}
		return n + 1
	}
	var c byte
	switch it.op {
	case opLiteral:
		c = it.lit[0]
	case opBalance:
		c = it.c
	default:
		for ; s < n; s++ {
			if it.set.has(m.src[s]) {
				return s
			}
			m.budget--
			if m.budget < 0 {
				m.refill()
			}
		}
		return n + 1
	}
	for s < n {
		end := min(n, s+skipChunk)
		if k := strings.IndexByte(m.src[s:end], c); k >= 0 {
			m.tick(k >> 4)
			return s + k
		}
		s = end
		m.tick(skipChunk >> 4)
	}
	return n + 1
}

// match is lstrlib.c's match: it matches items[pi:] at subject offset s
// and returns the offset where the match ends, or -1. It recurses where
// Lua recurses (captures and quantifiers) and loops where Lua loops.
func (m *matcher) match(s, pi int) int {
	if m.depth == 0 {
		panic(abort{ErrTooComplex})
	}
	m.depth--
	res := -1
	src := m.src
loop:
	for {
		// One step per item: a long pattern costs steps too.
		m.budget--
		if m.budget < 0 {
			m.refill()
		}
		it := &m.items[pi]
		switch it.op {
		case opEnd:
			res = s
			break loop
		case opEndAnchor:
			if s == len(src) {
				res = s
			}
			break loop
		case opLiteral:
			if len(it.lit) == 1 {
				if s >= len(src) || src[s] != it.lit[0] {
					break loop
				}
				s++
			} else {
				if len(src)-s < len(it.lit) || !m.equal(src[s:s+len(it.lit)], it.lit) {
					break loop
				}
				s += len(it.lit)
			}
			pi++
		case opSingle:
			matched := s < len(src) && it.set.has(src[s])
			switch it.quant {
			case 0:
				if !matched {
					break loop
				}
				s++
				pi++
			case '?':
				if matched {
					if r := m.match(s+1, pi+1); r >= 0 {
						res = r
						break loop
					}
				}
				pi++
			case '*':
				res = m.maxExpand(s, pi)
				break loop
			case '+':
				if matched {
					res = m.maxExpand(s+1, pi)
				}
				break loop
			case '-':
				res = m.minExpand(s, pi)
				break loop
			}
		case opOpen:
			m.caps[it.idx].init = s
			res = m.match(s, pi+1)
			break loop
		case opPosition:
			m.caps[it.idx].init = s
			res = m.match(s, pi+1)
			break loop
		case opClose:
			m.caps[it.idx].len = s - m.caps[it.idx].init
			res = m.match(s, pi+1)
			break loop
		case opBackref:
			if m.p.kinds[it.idx] == CapPosition {
				break loop // lstrlib compares a length of (size_t)-2: never
			}
			c := m.caps[it.idx]
			if len(src)-s < c.len || !m.equal(src[s:s+c.len], src[c.init:c.init+c.len]) {
				break loop
			}
			s += c.len
			pi++
		case opBalance:
			if s >= len(src) || src[s] != it.c {
				break loop
			}
			s = m.balance(s, it.c, it.c2)
			if s < 0 {
				break loop
			}
			pi++
		case opFrontier:
			var prev, cur byte // the subject's ends read as NUL
			if s > 0 {
				prev = src[s-1]
			}
			if s < len(src) {
				cur = src[s]
			}
			if it.set.has(prev) || !it.set.has(cur) {
				break loop
			}
			pi++
		case opError:
			panic(abort{m.p.err})
		}
	}
	m.depth++
	return res
}

// equal compares a and b, of equal length, a chunk at a time so that a
// long back-reference or literal still lets the check run.
func (m *matcher) equal(a, b string) bool {
	for len(a) > skipChunk {
		if a[:skipChunk] != b[:skipChunk] {
			return false
		}
		a, b = a[skipChunk:], b[skipChunk:]
		m.tick(skipChunk >> 4)
	}
	m.tick(len(a) >> 4)
	return a == b
}

// balance returns the offset just past the %bxy match that opens at
// src[s] == x, or -1 when the subject ends first.
func (m *matcher) balance(s int, open, close byte) int {
	src := m.src
	depth := 1
	for s++; s < len(src); s++ {
		m.budget--
		if m.budget < 0 {
			m.refill()
		}
		switch src[s] {
		case close: // tested first, as lstrlib does, for %bxx
			if depth--; depth == 0 {
				return s + 1
			}
		case open:
			depth++
		}
	}
	return -1
}

// maxExpand is lstrlib.c's max_expand: the longest run of items[pi] from
// s, then shorter ones, until the rest of the pattern matches.
func (m *matcher) maxExpand(s, pi int) int {
	src := m.src
	set := m.items[pi].set
	i := 0
	for s+i < len(src) && set.has(src[s+i]) {
		i++
		m.budget--
		if m.budget < 0 {
			m.refill()
		}
	}
	if m.depth == 0 {
		panic(abort{ErrTooComplex}) // as the first call below would
	}
	next := m.items[pi].next
	for ; i >= 0; i-- {
		m.budget--
		if m.budget < 0 {
			m.refill()
		}
		// A following literal byte must be there; don't call to find out.
		if next >= 0 && (s+i >= len(src) || src[s+i] != byte(next)) {
			continue
		}
		if r := m.match(s+i, pi+1); r >= 0 {
			return r
		}
	}
	return -1
}

// minExpand is lstrlib.c's min_expand: the shortest run of items[pi] from
// s after which the rest of the pattern matches.
func (m *matcher) minExpand(s, pi int) int {
	src := m.src
	set := m.items[pi].set
	next := m.items[pi].next
	if m.depth == 0 {
		panic(abort{ErrTooComplex})
	}
	for {
		m.budget--
		if m.budget < 0 {
			m.refill()
		}
		if next < 0 || (s < len(src) && src[s] == byte(next)) {
			if r := m.match(s, pi+1); r >= 0 {
				return r
			}
		}
		if s < len(src) && set.has(src[s]) {
			s++
		} else {
			return -1
		}
	}
}
