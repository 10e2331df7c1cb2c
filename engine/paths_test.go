package engine_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// A module may not register a path that needs cleaning: each of these
// was accepted and served before (the list).
func TestRegisteringNonCanonicalPathsFails(t *testing.T) {
	for _, p := range []string{
		"//_matrix/client/v3/login",
		"/./_matrix/y",
		"/_synapse//admin/z",
		"/_synapse/client/../../_matrix/client/v3/x",
		"/_synapse/client/%2e%2e/x",
		"/_synapse/client/x?y",
	} {
		_, err := loadEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
			"m.lua": `return { new = function(c, api)
	api.register_web_resource("` + p + `", function() return { json = {} } end)
end }`})
		if err == nil || !strings.Contains(err.Error(), "(m.lua:2)") || !strings.Contains(err.Error(), "is not canonical") {
			t.Errorf("register_web_resource(%q): want a not-canonical error at m.lua:2, got %v", p, err)
		}
	}
}

// Requests whose path is not canonical are answered 400 before routing:
// a module on "/" never sees "..", and nothing reaches /_matrix/ or
// /_synapse/admin/ through a module.
func TestNonCanonicalRequestsAre400(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{
		"m.lua": `return { new = function(c, api)
	api.register_web_resource("/", function(req) return { json = { path = req.path } } end)
end }`})
	cases := []struct {
		target string
		status int
	}{
		{"/_synapse/client/hello", 200},
		{"/_synapse/client/hello/", 200},
		{"/_synapse/client/%40bob%3Aexample.org", 200},
		{"/_synapse/client/../../_matrix/client/v3/login", 400},
		{"/_synapse/client/%2e%2e/%2e%2e/_matrix/client/v3/login", 400},
		{"/_synapse/client/%2E%2E/%2E%2E/_matrix/client/v3/login", 400},
		{"//_matrix/client/v3/login", 400},
		{"/./_matrix/client/v3/login", 400},
		{"/_synapse//admin/v1/users", 400},
		{"/_synapse%2fadmin/v1/users", 400},
		{"/_matrix/client/v3/login", 404},
		{"/_synapse/admin/v1/users", 404},
	}
	for _, tc := range cases {
		req := httptest.NewRequest("GET", "http://example.org"+tc.target, nil)
		rec := httptest.NewRecorder()
		e.Handler().ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != tc.status {
			t.Errorf("GET %s: %d %s, want %d", tc.target, rec.Code, body, tc.status)
			continue
		}
		if tc.status == 400 && !strings.Contains(string(body), "Path is not canonical") {
			t.Errorf("GET %s: body %s", tc.target, body)
		}
		if tc.status == 200 && strings.Contains(string(body), "..") {
			t.Errorf("GET %s: the module saw %s", tc.target, body)
		}
	}
}
