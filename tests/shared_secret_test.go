package tests

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/internal/invoke"
)

// The shipped shared_secret_auth example behaves as upstream
// matrix-synapse-shared-secret-auth on its two flags:
// com_devture_shared_secret_auth_support_enabled (default true) and
// m_login_password_support_enabled (default false); with both off the
// module refuses to start.
func TestSharedSecretAuthFlags(t *testing.T) {
	dir := filepath.Join("..", "scripts", "examples", "shared_secret_auth")
	custom := func(user string) []string {
		return []string{`"` + user + `"`, `"com.devture.shared_secret_auth"`, `{"token": "` + sharedSecretToken("@"+user+":example.org") + `"}`}
	}
	password := func(user string) []string {
		return []string{`"` + user + `"`, `"m.login.password"`, `{"password": "` + sharedSecretToken("@"+user+":example.org") + `"}`}
	}
	tests := []struct {
		name       string
		flags      string
		loginTypes []string
		custom     string // answer to a custom-type login, as JSON
		password   string
		wantErr    string
	}{
		{name: "defaults", flags: "",
			loginTypes: []string{"com.devture.shared_secret_auth"}, custom: `["@alice:example.org"]`, password: `null`},
		{name: "both", flags: "m_login_password_support_enabled: true",
			loginTypes: []string{"com.devture.shared_secret_auth", "m.login.password"}, custom: `["@alice:example.org"]`, password: `["@alice:example.org"]`},
		{name: "password only", flags: "com_devture_shared_secret_auth_support_enabled: false, m_login_password_support_enabled: true",
			loginTypes: []string{"m.login.password"}, custom: `null`, password: `["@alice:example.org"]`},
		{name: "neither", flags: "com_devture_shared_secret_auth_support_enabled: false",
			wantErr: `test.yaml:4: module "shared_secret_auth": config: at least one login type must be enabled`},
		{name: "not a boolean", flags: "com_devture_shared_secret_auth_support_enabled: 'no'",
			wantErr: "com_devture_shared_secret_auth_support_enabled must be true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "server_name: example.org\nmodules:\n  - module: shared_secret_auth.lua\n    config: {shared_secret: change-me-to-a-long-random-secret"
			if tc.flags != "" {
				yaml += ", " + tc.flags
			}
			yaml += "}\n"
			cfg, err := engine.ParseConfig([]byte(yaml), "test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Dir = dir
			host := memhost.New("example.org")
			if _, err := host.CreateUser("alice", false); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			eng, err := engine.New(ctx, cfg, engine.Options{Host: host, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			var types []string
			for lt := range eng.LoginTypes() {
				types = append(types, lt)
			}
			if len(types) > 1 && types[0] > types[1] {
				types[0], types[1] = types[1], types[0]
			}
			if !reflect.DeepEqual(types, tc.loginTypes) {
				t.Errorf("login types %v, want %v", types, tc.loginTypes)
			}
			for _, c := range []struct {
				args []string
				want string
			}{{custom("alice"), tc.custom}, {password("alice"), tc.password}} {
				raw := make([]json.RawMessage, len(c.args))
				for i, a := range c.args {
					raw[i] = json.RawMessage(a)
				}
				res, err := invoke.Call(ctx, eng, "auth_checkers", raw)
				if err != nil {
					t.Fatal(err)
				}
				if got := marshal(res); got != c.want {
					t.Errorf("%s login: %s, want %s", c.args[1], got, c.want)
				}
			}
		})
	}
}
