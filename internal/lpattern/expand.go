package lpattern

import (
	"strconv"
	"strings"
)

// Expand appends to dst the replacement string repl expanded for match m
// of subject, as Lua 5.1's string.gsub does when its replacement is a
// string or a number (lstrlib.c's add_s):
//
//   - "%0" is the whole match;
//   - "%1" to "%9" are the captures, read as Match.Get reads them: "%1" is
//     the whole match when the pattern has no captures, a position
//     capture gives its 1-based position in decimal, and a missing or
//     unfinished capture fails with "invalid capture index" or
//     "unfinished capture";
//   - '%' followed by any other byte is that byte ("%%" is '%');
//   - a lone '%' at the end gives a NUL byte: 5.1 reads the string's
//     terminator there.
//
// On error dst is returned as it was.
func Expand(dst []byte, repl, subject string, m *Match) ([]byte, error) {
	orig := len(dst)
	for {
		k := strings.IndexByte(repl, '%')
		if k < 0 {
			return append(dst, repl...), nil
		}
		dst = append(dst, repl[:k]...)
		if k+1 == len(repl) {
			return append(dst, 0), nil
		}
		d := repl[k+1]
		repl = repl[k+2:]
		switch {
		case d == '0':
			dst = append(dst, subject[m.Start:m.End]...)
		case '1' <= d && d <= '9':
			c, err := m.Get(int(d - '1'))
			if err != nil {
				return dst[:orig], err
			}
			if c.Kind == CapPosition {
				dst = strconv.AppendInt(dst, int64(c.Start)+1, 10)
			} else {
				dst = append(dst, subject[c.Start:c.End]...)
			}
		default:
			dst = append(dst, d)
		}
	}
}
