// Package webpath decides whether a URL path is canonical: the only form
// in which the engine judges paths (reserved prefixes, routing) and hands
// them to scripts. A path that is not canonical (dot segments, empty
// segments, percent-encoded dots or slashes) is refused, never cleaned:
// cleaning is where "/_synapse/client/../../_matrix/" slips through.
package webpath

import (
	"errors"
	"fmt"
	"strings"
)

// Request reports why a request's path is not canonical, or nil.
// escaped is the path as the client sent it (http.Request.URL.EscapedPath
// or RequestURI without the query); path is its decoded form (URL.Path).
// A single trailing slash is canonical ("/a/b/"); nothing else that
// path.Clean would change is.
func Request(escaped, path string) error {
	if err := encoded(escaped); err != nil {
		return err
	}
	return segments(path)
}

// Register reports why a path a module registers is not canonical, or
// nil. Registered paths are compared with decoded request paths, so they
// may not hold percent-encoding at all; a trailing slash is allowed (the
// engine drops it).
func Register(path string) error {
	if strings.ContainsRune(path, '%') {
		return errors.New("percent-encoding is not allowed (paths are matched decoded: write the character itself)")
	}
	for _, r := range path {
		switch {
		case r == '?' || r == '#':
			return fmt.Errorf("%q is not part of a path (no query or fragment)", r)
		case r <= ' ' || r == 0x7f:
			return errors.New("spaces and control characters are not allowed")
		case r == '\\':
			return errors.New(`"\" is not allowed (some servers read it as "/")`)
		}
	}
	return segments(path)
}

// encoded refuses percent-encoded '.', '/' and '\' (they decode into
// separators or dot segments the router would then see) and malformed
// escapes.
func encoded(escaped string) error {
	for i := 0; i < len(escaped); i++ {
		if escaped[i] != '%' {
			continue
		}
		if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
			return errors.New("malformed percent-encoding")
		}
		switch strings.ToLower(escaped[i+1 : i+3]) {
		case "2e":
			return errors.New("percent-encoded '.' (%2e)")
		case "2f":
			return errors.New("percent-encoded '/' (%2f)")
		case "5c":
			return errors.New(`percent-encoded '\' (%5c)`)
		case "00":
			return errors.New("percent-encoded NUL (%00)")
		}
		i += 2
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// segments checks a decoded path: absolute, no empty segment but an
// optional trailing one, no "." or ".." segment, no NUL.
func segments(path string) error {
	if !strings.HasPrefix(path, "/") {
		return errors.New("not absolute (must start with /)")
	}
	if path == "/" {
		return nil
	}
	if strings.IndexByte(path, 0) >= 0 {
		return errors.New("NUL byte")
	}
	rest := strings.TrimSuffix(path[1:], "/")
	for _, seg := range strings.Split(rest, "/") {
		switch seg {
		case "":
			return errors.New("empty segment (//)")
		case ".":
			return errors.New("'.' segment (/./)")
		case "..":
			return errors.New("'..' segment (/../)")
		}
	}
	return nil
}
