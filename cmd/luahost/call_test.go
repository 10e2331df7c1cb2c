package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `luahost call` exits 0 when the call completed whatever the verdict, 1
// when it failed, and 2 when the question was wrong (usage, or a callback
// no loaded module registered).
func TestCallExitStatus(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("luahost.yaml", "server_name: example.org\nmodules:\n  - module: m.lua\n")
	write("m.lua", `local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{
    check_event_for_spam = function(event)
      if event.content.body == "boom" then error("kaboom") end
      return api.Codes.FORBIDDEN
    end,
  }
end
return M
`)
	cfg := filepath.Join(dir, "luahost.yaml")
	cases := []struct {
		args []string
		want int
		out  string
	}{
		{[]string{"check_event_for_spam", `{"type":"m.room.message","sender":"@a:example.org","content":{"body":"hi"}}`}, 0, `"M_FORBIDDEN"`},
		{[]string{"check_event_for_spam", `{"type":"m.room.message","sender":"@a:example.org","content":{"body":"boom"}}`}, 1, "kaboom"},
		{[]string{"user_may_invite", `"@a:example.org"`, `"@b:example.org"`, `"!r:example.org"`}, 2, "no loaded module registered spam_checker.user_may_invite"},
		{nil, 2, "usage: luahost call"},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		got := run(append([]string{"call", "-c", cfg}, tc.args...), &stdout, &stderr)
		if got != tc.want {
			t.Errorf("call %v: exit %d, want %d (stderr: %s)", tc.args, got, tc.want, stderr.String())
		}
		if !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("call %v: output %q does not contain %q", tc.args, stdout.String()+stderr.String(), tc.out)
		}
	}
}
