package lpattern

import "math/bits"

// byteSet is a set of bytes, one bit per byte value. Every single-character
// pattern item (a literal, '.', a %-class, a [set]) compiles to one, so the
// matcher tests any item with the same lookup.
type byteSet [4]uint64

func (b *byteSet) has(c byte) bool { return b[c>>6]&(1<<(c&63)) != 0 }

func (b *byteSet) add(c byte) { b[c>>6] |= 1 << (c & 63) }

func (b *byteSet) addRange(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		b.add(byte(c))
	}
}

func (b *byteSet) union(o *byteSet) {
	for i := range b {
		b[i] |= o[i]
	}
}

func (b *byteSet) invert() {
	for i := range b {
		b[i] = ^b[i]
	}
}

// single reports whether b holds exactly one byte, and which.
func (b *byteSet) single() (byte, bool) {
	n := bits.OnesCount64(b[0]) + bits.OnesCount64(b[1]) + bits.OnesCount64(b[2]) + bits.OnesCount64(b[3])
	if n != 1 {
		return 0, false
	}
	for i, x := range b {
		if x != 0 {
			return byte(i*64 + bits.TrailingZeros64(x)), true
		}
	}
	return 0, false
}

// classSets holds, for every byte cl, the set that "%cl" denotes, as
// lstrlib.c's match_class decides it in the C locale: the class letters
// (a c d l p s u w x z) and their upper-case complements, and any other
// byte standing for itself.
var classSets [256]byteSet

func init() {
	var base [256]byteSet
	for c := 0; c < 256; c++ {
		b := byte(c)
		isUpper := 'A' <= b && b <= 'Z'
		isLower := 'a' <= b && b <= 'z'
		isDigit := '0' <= b && b <= '9'
		isCntrl := b < 0x20 || b == 0x7f
		isSpace := b == ' ' || ('\t' <= b && b <= '\r')
		isAlnum := isUpper || isLower || isDigit
		isPunct := 0x21 <= b && b <= 0x7e && !isAlnum
		isXdigit := isDigit || ('a' <= b && b <= 'f') || ('A' <= b && b <= 'F')
		for cl, in := range map[byte]bool{
			'a': isUpper || isLower, 'c': isCntrl, 'd': isDigit, 'l': isLower,
			'p': isPunct, 's': isSpace, 'u': isUpper, 'w': isAlnum,
			'x': isXdigit, 'z': b == 0,
		} {
			if in {
				base[cl].add(b)
			}
		}
	}
	for c := 0; c < 256; c++ {
		cl := byte(c)
		lower := cl
		if 'A' <= cl && cl <= 'Z' {
			lower = cl + 'a' - 'A'
		}
		switch lower {
		case 'a', 'c', 'd', 'l', 'p', 's', 'u', 'w', 'x', 'z':
			classSets[c] = base[lower]
			if cl != lower {
				classSets[c].invert()
			}
		default:
			classSets[c].add(cl)
		}
	}
}

// bracketSet returns the set written p[open:close+1], where p[open] is '['
// and p[close] the ']' that classEnd found. It walks the set exactly as
// lstrlib.c's matchbracketclass does, so the odd corners agree too: a '-'
// first or last is literal, "[%a-z]" is letters, '-' and 'z', and
// "[a-%%]" ends by reading the closing ']' as an escaped character.
func bracketSet(p string, open, close int) byteSet {
	var set byteSet
	i := open
	negate := false
	if p[i+1] == '^' {
		negate = true
		i++
	}
	for i++; i < close; i++ {
		switch {
		case p[i] == '%':
			i++
			set.union(&classSets[p[i]])
		case p[i+1] == '-' && i+2 < close:
			set.addRange(p[i], p[i+2])
			i += 2
		default:
			set.add(p[i])
		}
	}
	if negate {
		set.invert()
	}
	return set
}

// classEnd returns the index just past the single-character class that
// starts at p[i], or the error lstrlib.c's classEnd raises for it.
func classEnd(p string, i int) (int, *Error) {
	c := p[i]
	i++
	switch c {
	case '%':
		if i >= len(p) {
			return 0, errEndsWithPercent
		}
		return i + 1, nil
	case '[':
		if i < len(p) && p[i] == '^' {
			i++
		}
		// The first character is always a member, even ']'.
		for {
			if i >= len(p) {
				return 0, errMissingBracket
			}
			c := p[i]
			i++
			if c == '%' && i < len(p) {
				i++ // an escape such as "%]"
			}
			if i < len(p) && p[i] == ']' {
				return i + 1, nil
			}
		}
	default:
		return i, nil
	}
}

// anySet is '.'; byteSets[c] is the set of c alone.
var (
	anySet   = byteSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
	byteSets [256]byteSet
)

func init() {
	for c := range byteSets {
		byteSets[c].add(byte(c))
	}
}

// itemSet returns the set for the single-character class p[i:end]. Only
// a [set] is allocated; the others are shared tables.
func itemSet(p string, i, end int) *byteSet {
	switch p[i] {
	case '.':
		return &anySet
	case '%':
		return &classSets[p[i+1]]
	case '[':
		set := bracketSet(p, i, end-1)
		return &set
	default:
		return &byteSets[p[i]]
	}
}
