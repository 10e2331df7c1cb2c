package engine_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"
)

// Values the adversarial pass found accepted: each is now an error that
// names the file, the line and the problem.
func TestConfigRefusesHostileValues(t *testing.T) {
	mod := func(extra string) string {
		return "server_name: x\nmodules:\n  - module: a.lua\n" + extra
	}
	cases := []struct{ name, yaml, want string }{
		{"timeout rounding to zero", mod("    timeout: 0.0000000001\n"), "test.yaml:4: module 1: timeout: 0.0000000001 must be between 1ms and 24h"},
		{"timeout 1e308", mod("    timeout: 1e308\n"), "test.yaml:4: module 1: timeout: 1e308 must be between 1ms and 24h"},
		{"timeout 9999999999999", mod("    timeout: 9999999999999\n"), "must be between 1ms and 24h"},
		{"timeout 25h", mod("    timeout: 25h\n"), "timeout: 25h must be between 1ms and 24h"},
		{"timeout 0", mod("    timeout: 0\n"), "must be between 1ms and 24h"},
		{"timeout -1s", mod("    timeout: -1s\n"), "must be between 1ms and 24h"},
		{"timeout NaN", mod("    timeout: NaN\n"), `"NaN" is not a duration`},
		{"timeout inf", mod("    timeout: .inf\n"), `".inf" is not a duration`},
		{"timeout with junk", mod("    timeout: 5 minutes\n"), `"5 minutes" is not a duration`},
		{"init_timeout 2h", mod("    init_timeout: 2h\n"), "init_timeout: 2h must be between 1ms and 1h"},
		{"two documents", "server_name: x\nmodules: []\n---\nmodules:\n  - module: evil.lua\n", "test.yaml:3: the config holds several YAML documents"},
		{"duplicate modules", "server_name: x\nmodules:\n  - module: a.lua\nmodules:\n  - module: b.lua\n", `test.yaml:4: duplicate key "modules" (first at line 2)`},
		{"duplicate top key", "server_name: x\nserver_name: y\nmodules: []\n", `test.yaml:2: duplicate key "server_name" (first at line 1)`},
		{"duplicate module key", mod("    timeout: 1s\n    timeout: 2s\n"), `test.yaml:5: module 1: duplicate key "timeout" (first at line 4)`},
		{"duplicate storage key", "server_name: x\nstorage:\n  backend: memory\n  backend: bolt\nmodules: []\n", `test.yaml:4: storage: duplicate key "backend"`},
		{"duplicate key in module config", mod("    config:\n      a: 1\n      a: 2\n"), `already defined at line 5`},
		{"huge value echoed", mod("    on_error: " + strings.Repeat("x", 100000) + "\n"), "... (100000 bytes)"},
		{"huge key echoed", "server_name: x\n? " + strings.Repeat("k", 5000) + "\n: 1\nmodules: []\n", "kkk... (5000 bytes)"},
		{"the list of keys stays whole", "server_name: x\nlistn: 1\nmodules: []\n", `background_lease); did you mean "listen"?`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml), "test.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %.500v\nwant an error containing %q", err, tc.want)
			}
			if len(err.Error()) > 1000 {
				t.Errorf("the error echoes %d bytes", len(err.Error()))
			}
		})
	}
}

func TestConfigDurationsInRange(t *testing.T) {
	cases := []struct {
		value string
		want  time.Duration
	}{
		{"1ms", time.Millisecond}, {"0.001", time.Millisecond}, {"1.5", 1500 * time.Millisecond},
		{"24h", 24 * time.Hour}, {"86400", 24 * time.Hour}, {"250ms", 250 * time.Millisecond},
	}
	for _, tc := range cases {
		cfg, err := ParseConfig([]byte("server_name: x\nmodules:\n  - module: a.lua\n    timeout: "+tc.value+"\n"), "test.yaml")
		if err != nil {
			t.Errorf("timeout %s: %v", tc.value, err)
			continue
		}
		if got := cfg.Modules[0].Timeout; got != tc.want {
			t.Errorf("timeout %s = %s, want %s", tc.value, got, tc.want)
		}
	}
	// A leading --- starts the one document; it is not a second one.
	if _, err := ParseConfig([]byte("---\nserver_name: x\nmodules: []\n"), "test.yaml"); err != nil {
		t.Errorf("a config starting with ---: %v", err)
	}
}
