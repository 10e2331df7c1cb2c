package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// contrib/systemd/luahost.service is checked with systemd's own tools,
// offline: it must pass `systemd-analyze verify`, keep its sandbox
// (`systemd-analyze security` rates its exposure), and start luahost with
// flags luahost accepts.

const (
	unitPath = "../contrib/systemd/luahost.service"
	// The unit's binary; the test points it at one it builds.
	unitBinary = "/usr/local/bin/luahost"
	// systemd-analyze security's scale runs from 0 (locked down) to 10.
	maxExposure = 2.0
)

func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit cannot be verified here")
	}
	if testing.Short() {
		t.Skip("-short: skips building luahost for the unit")
	}
	src, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "luahost")
	build := exec.Command("go", "build", "-o", bin, "./cmd/luahost")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// verify insists that ExecStart's binary exists.
	unit := filepath.Join(dir, "luahost.service")
	if !strings.Contains(string(src), "ExecStart="+unitBinary+" ") {
		t.Fatalf("%s: ExecStart does not run %s", unitPath, unitBinary)
	}
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(src), unitBinary, bin)), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("verify", func(t *testing.T) {
		out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("sandbox", func(t *testing.T) {
		out, err := exec.Command(analyze, "security", "--offline=yes", unit).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze security: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
		}
		level, _ := strconv.ParseFloat(string(m[1]), 64)
		if level > maxExposure {
			var open []string
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "✗") {
					open = append(open, strings.TrimSpace(line))
				}
			}
			t.Errorf("exposure %.1f, want at most %.1f: a sandboxing option was dropped? Not set:\n%s",
				level, maxExposure, strings.Join(open, "\n"))
		}
	})

	t.Run("luahost accepts ExecStart", func(t *testing.T) {
		m := regexp.MustCompile(`(?m)^ExecStart=\S+ (.*)$`).FindSubmatch(src)
		if m == nil {
			t.Fatal("no ExecStart= line")
		}
		args := strings.Fields(string(m[1]))
		conf, set, ok := flagValue(args, "-c", "--c", "-config", "--config")
		if !ok || conf != "/etc/luahost/luahost.yaml" {
			t.Fatalf("ExecStart %q: want -c /etc/luahost/luahost.yaml, the ConfigurationDirectory", args)
		}
		// A missing config: serve stops before it listens. An unknown
		// flag would exit 2 instead.
		missing := filepath.Join(t.TempDir(), "missing", "luahost.yaml")
		set(missing)
		cmd := exec.Command(bin, args...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), missing) {
			t.Errorf("luahost %q: exit %d, want 1 with an error naming the config\n%s", args, code, out)
		}
	})
}
