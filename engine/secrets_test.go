package engine_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	. "github.com/luahost/luahost/engine"
)

func TestSecretsFromTheEnvironmentAndFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("token.txt", "file-secret-value\n")
	write("crlf.txt", "crlf-secret\r\n")
	write("two-lines.txt", "line one\nline two\n\n")
	if err := os.Mkdir(filepath.Join(dir, "creds"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("creds/db", "db-secret")
	write("huge", strings.Repeat("x", 1<<20+1))
	t.Setenv("LUAHOST_T_TOKEN", "env-secret-value")
	t.Setenv("LUAHOST_T_HOST", "redis.internal")
	t.Setenv("LUAHOST_T_CREDS", filepath.Join(dir, "creds"))
	t.Setenv("LUAHOST_T_EMPTY", "")

	cases := []struct {
		name  string
		value string // YAML for the module config's key "v"
		want  any
		err   string // a config error containing this, at line 6
	}{
		{"whole value", `${LUAHOST_T_TOKEN}`, "env-secret-value", ""},
		{"quoted", `"${LUAHOST_T_TOKEN}"`, "env-secret-value", ""},
		{"inside a string", `"redis://:${LUAHOST_T_TOKEN}@${LUAHOST_T_HOST}:6379/0"`, "redis://:env-secret-value@redis.internal:6379/0", ""},
		{"set but empty", `"x${LUAHOST_T_EMPTY}y"`, "xy", ""},
		{"literal", `"$${LUAHOST_T_TOKEN} costs $5"`, "${LUAHOST_T_TOKEN} costs $5", ""},
		{"in a list", `["a", "${LUAHOST_T_HOST}"]`, []any{"a", "redis.internal"}, ""},
		{"file, newline dropped", `!file token.txt`, "file-secret-value", ""},
		{"file, CRLF dropped", `!file crlf.txt`, "crlf-secret", ""},
		{"file, one newline dropped", `!file two-lines.txt`, "line one\nline two\n", ""},
		{"file path from the environment", `!file ${LUAHOST_T_CREDS}/db`, "db-secret", ""},
		{"a number stays a number", `5`, 5, ""},
		{"missing variable", `${LUAHOST_T_MISSING}`, nil, "${LUAHOST_T_MISSING}: environment variable LUAHOST_T_MISSING is not set"},
		{"bad name", `"${1X}"`, nil, "${1X}: not an environment variable name"},
		{"unterminated", `"${LUAHOST_T_TOKEN"`, nil, "unterminated ${"},
		{"missing file", `!file nope.txt`, nil, "!file nope.txt: file " + filepath.Join(dir, "nope.txt") + " does not exist"},
		{"folder", `!file creds`, nil, "is a folder, not a file"},
		{"too large", `!file huge`, nil, "is larger than 1024 KiB"},
		{"missing variable in a file path", `!file ${LUAHOST_T_MISSING}/x`, nil, "environment variable LUAHOST_T_MISSING is not set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfgFile := filepath.Join(dir, "luahost.yaml")
			write("luahost.yaml", "server_name: example.org\nstorage: {backend: memory}\nmodules:\n  - module: echo.lua\n    config:\n      v: "+c.value+"\n")
			cfg, err := LoadConfig(cfgFile)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), cfgFile+":6:") {
					t.Fatalf("error %v, want %q at %s:6", err, c.err, cfgFile)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Modules[0].Config.(map[string]any)["v"]; asJSON(t, got) != asJSON(t, c.want) {
				t.Errorf("the module gets %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestSecretKeysAreNotExpandedAndTheCallersTreeIsKept(t *testing.T) {
	t.Setenv("LUAHOST_T_TOKEN", "env-secret-value")
	src := "server_name: example.org\nmodules:\n  - module: a.lua\n    config:\n      ${LUAHOST_T_TOKEN}: ${LUAHOST_T_TOKEN}\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfigNode(&doc, "homeserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Modules[0].Config.(map[string]any)
	if m["${LUAHOST_T_TOKEN}"] != "env-secret-value" {
		t.Errorf("module config %v", m)
	}
	out, _ := yaml.Marshal(&doc)
	if strings.Contains(string(out), "env-secret-value") {
		t.Errorf("ParseConfigNode changed the homeserver's tree:\n%s", out)
	}
}

// A secret value never reaches the log, Status or a config error, however
// a script or a mistake exposes it.
func TestSecretsAreRedacted(t *testing.T) {
	t.Setenv("LUAHOST_T_TOKEN", "env-secret-value")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("file-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("leaky.lua", `local M = {}
function M.new(config, api)
  print("token is " .. config.token)
  require("log").warn("password", { pw = config.pw, nested = { again = "x" .. config.pw } })
  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
    error("bad password " .. config.pw)
  end }
end
return M`)
	write("broken.lua", `local M = {}
function M.parse_config(config) error("no good: " .. config.token) end
function M.new(config, api) end
return M`)
	write("luahost.yaml", `server_name: example.org
storage: {backend: memory}
modules:
  - module: leaky.lua
    config: { token: "${LUAHOST_T_TOKEN}", pw: !file pw }
  - module: broken.lua
    config: { token: "Bearer ${LUAHOST_T_TOKEN}" }
`)
	cfg, err := LoadConfig(filepath.Join(dir, "luahost.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	e, err := New(context.Background(), cfg, Options{Logger: log, AllowPartial: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.CheckEventForSpam(context.Background(), msg("@a:example.org", "x")); err == nil ||
		strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "bad password [redacted]") {
		t.Errorf("callback error: %v", err)
	}
	var status strings.Builder
	for _, st := range e.Status() {
		if st.LastError != nil {
			status.WriteString(st.LastError.Error())
		}
	}
	if !strings.Contains(status.String(), "no good: Bearer [redacted]") {
		t.Errorf("status error: %s", status.String())
	}
	for what, text := range map[string]string{"log": logs.String(), "status": status.String()} {
		if strings.Contains(text, "env-secret-value") || strings.Contains(text, "file-secret-value") {
			t.Errorf("a secret in the %s:\n%s", what, text)
		}
	}
	for _, want := range []string{`"msg":"token is [redacted]"`, `"pw":"[redacted]"`, `"again":"x[redacted]"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log has no %s:\n%s", want, logs.String())
		}
	}

	// A value that fails a config check is quoted in the error: redacted.
	t.Setenv("LUAHOST_T_BACKEND", "not-a-backend-but-secret")
	write("bad.yaml", "storage: {backend: \"${LUAHOST_T_BACKEND}\"}\nmodules: []\n")
	_, err = LoadConfig(filepath.Join(dir, "bad.yaml"))
	if err == nil || strings.Contains(err.Error(), "not-a-backend") || !strings.Contains(err.Error(), `storage.backend "[redacted]"`) {
		t.Errorf("config error: %v", err)
	}
}
