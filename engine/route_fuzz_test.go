package engine

import (
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
)

// Routing on any request target: a route is found only for a canonical
// path outside the reserved prefixes, at a segment boundary of the path,
// with the subpath the rest of it.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		"/", "/_synapse/client/a", "/_synapse/client/a/b/c", "/_synapse/client/ab",
		"//_matrix/client/v3/login", "/./_matrix/y", "/_synapse//admin/z",
		"/_synapse/client/../../_matrix/client/v3/login",
		"/_synapse/client/%2e%2e/%2e%2e/_matrix/client/v3/login", "/_synapse%2fadmin/v1",
		"/_matrix/client/v3/login", "/_synapse/admin/v1/users", "/_synapse/admin", "/_matrix",
	} {
		f.Add(s)
	}
	s := newSnapshot(nil)
	for _, p := range []string{"/", "/_synapse/client/a", "/_synapse/client/a/b"} {
		s.routes[p] = &route{path: p}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		rt, sub, status, _ := s.route(u.EscapedPath(), u.Path)
		if rt == nil {
			if status == http.StatusOK {
				t.Fatalf("%q: no route but status 200", raw)
			}
			return
		}
		p := u.Path
		trimmed := p
		if len(trimmed) > 1 {
			trimmed = strings.TrimSuffix(trimmed, "/")
		}
		if path.Clean(p) != trimmed {
			t.Fatalf("%q routed with a path that is not clean: %q", raw, p)
		}
		if reserved(p) {
			t.Fatalf("%q routed a reserved path %q to a module", raw, p)
		}
		if rt.path == "/" {
			if sub != p {
				t.Fatalf("%q: subpath %q under /", raw, sub)
			}
			return
		}
		if p != rt.path+sub || (sub != "" && sub[0] != '/') {
			t.Fatalf("%q: route %q with subpath %q does not make %q", raw, rt.path, sub, p)
		}
	})
}
