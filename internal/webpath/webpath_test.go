package webpath

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// target splits a request target as net/http does: the escaped path and
// its decoded form.
func target(t testing.TB, raw string) (escaped, decoded string, ok bool) {
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return "", "", false
	}
	return u.EscapedPath(), u.Path, true
}

func TestRequestPaths(t *testing.T) {
	cases := []struct {
		raw  string
		want string // "" when canonical
	}{
		{"/", ""},
		{"/_synapse/client/hello", ""},
		{"/_synapse/client/hello/", ""},
		{"/_synapse/client/hello/%40alice%3Aexample.org", ""},
		{"/_synapse/client/a.b/c..d/.e", ""},
		{"/_synapse/client/x?next=/../_matrix", ""}, // the query is not the path
		{"//_matrix/client/v3/login", "empty segment"},
		{"/_synapse//admin/z", "empty segment"},
		{"/_synapse/client/x//", "empty segment"},
		{"/./_matrix/y", "'.' segment"},
		{"/_synapse/client/.", "'.' segment"},
		{"/_synapse/client/../../_matrix/client/v3/login", "'..' segment"},
		{"/_synapse/client/..", "'..' segment"},
		{"/_synapse/client/%2e%2e/%2e%2e/_matrix/client/v3/login", "percent-encoded '.'"},
		{"/_synapse/client/%2E%2E/x", "percent-encoded '.'"},
		{"/_synapse/client/a%2eb", "percent-encoded '.'"},
		{"/_synapse%2fadmin/v1", "percent-encoded '/'"},
		{"/_synapse/client/x%2F..%2F..", "percent-encoded '/'"},
		{"/_synapse/client/x%5c..%5c", `percent-encoded '\'`},
		{"/_synapse/client/x%00", "NUL"},
		{"/_synapse/client/x%zz", ""}, // net/url refuses it first (see below)
	}
	for _, tc := range cases {
		escaped, decoded, ok := target(t, tc.raw)
		if !ok {
			if tc.want != "" {
				t.Errorf("%s: net/url refused it, the test expected %q", tc.raw, tc.want)
			}
			continue
		}
		err := Request(escaped, decoded)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: canonical, got %v", tc.raw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: want %q, got %v", tc.raw, tc.want, err)
		}
	}
	// Escapes that net/url would refuse are refused here too.
	if err := Request("/a%2", "/a"); err == nil {
		t.Error("a truncated escape passed")
	}
}

func TestRegisteredPaths(t *testing.T) {
	cases := []struct{ path, want string }{
		{"/", ""},
		{"/_synapse/client/notes", ""},
		{"/_synapse/client/notes/", ""},
		{"/_synapse/client/@bob:example.org", ""},
		{"//_matrix/client/v3/login", "empty segment"},
		{"/./_matrix/y", "'.' segment"},
		{"/_synapse//admin/z", "empty segment"},
		{"/_synapse/client/../../_matrix/client/v3/x", "'..' segment"},
		{"/_synapse/client/%2e%2e/x", "percent-encoding"},
		{"/_synapse/client/x?y=1", "no query"},
		{"/_synapse/client/x#top", "no query or fragment"},
		{"/_synapse/client/x ", "spaces"},
		{"/_synapse/client/x\n", "control"},
		{`/_synapse\admin`, `"\"`},
		{"_synapse/client/x", "not absolute"},
	}
	for _, tc := range cases {
		err := Register(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: canonical, got %v", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: want %q, got %v", tc.path, tc.want, err)
		}
	}
}

// A canonical path is one path.Clean leaves alone (but for one trailing
// slash), whose escaped form decodes no separator or dot, so every part
// of the engine that judges the decoded path judges what the client meant.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"/", "/_synapse/client/hello", "/_synapse/client/hello/",
		"//_matrix/client/v3/login", "/./_matrix/y", "/_synapse//admin/z",
		"/_synapse/client/../../_matrix/client/v3/login",
		"/_synapse/client/%2e%2e/%2e%2e/_matrix/client/v3/login",
		"/_synapse%2fadmin/v1", "/_synapse/client/x%5c..", "/a%00", "/%2E", "/a/./b", "/a/.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		escaped, decoded, ok := target(t, raw)
		if !ok {
			return
		}
		if Request(escaped, decoded) != nil {
			return
		}
		trimmed := decoded
		if len(trimmed) > 1 {
			trimmed = strings.TrimSuffix(trimmed, "/")
		}
		if path.Clean(decoded) != trimmed {
			t.Fatalf("%q accepted, but path.Clean makes %q of %q", raw, path.Clean(decoded), decoded)
		}
		low := strings.ToLower(escaped)
		for _, bad := range []string{"%2e", "%2f", "%5c", "%00"} {
			if strings.Contains(low, bad) {
				t.Fatalf("%q accepted with %s", raw, bad)
			}
		}
	})
}

// A registered path that passes is clean too, and holds nothing a
// decoded request path could not equal.
func FuzzRegister(f *testing.F) {
	for _, s := range []string{"/", "/_synapse/client/notes/", "//_matrix/x", "/./_matrix/y",
		"/_synapse/client/../../_matrix/x", "/a%2fb", "/a?b", "/a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if Register(p) != nil {
			return
		}
		trimmed := p
		if len(trimmed) > 1 {
			trimmed = strings.TrimSuffix(trimmed, "/")
		}
		if path.Clean(p) != trimmed || strings.ContainsAny(p, "%?#\\") {
			t.Fatalf("%q accepted but is not clean", p)
		}
	})
}
