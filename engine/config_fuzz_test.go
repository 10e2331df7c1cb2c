package engine_test

import (
	"errors"
	"testing"
	"time"

	. "github.com/luahost/luahost/engine"
)

// FuzzParseConfig: any text gives a config or ConfigErrors, never a
// panic; every error is short (values are cut to 200 bytes); an accepted
// config holds only values in their bounds. The seeds in
// testdata/fuzz/FuzzParseConfig hold the hostile configs.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("server_name: x\nmodules:\n  - module: a.lua\n    timeout: 0.0000000001\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, "f.yaml")
		if err != nil {
			if cfg != nil {
				t.Fatal("both a config and an error")
			}
			var ce ConfigErrors
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("not ConfigErrors: %T %v", err, err)
			}
			for _, e := range ce {
				if len(e.Msg) > 1200 {
					t.Fatalf("an error of %d bytes: %.300s", len(e.Msg), e.Msg)
				}
			}
			return
		}
		names := map[string]bool{}
		for _, m := range cfg.Modules {
			if m.Timeout < time.Millisecond || m.Timeout > 24*time.Hour ||
				m.InitTimeout < time.Millisecond || m.InitTimeout > time.Hour {
				t.Fatalf("module %q: timeouts %s, %s out of bounds", m.Name, m.Timeout, m.InitTimeout)
			}
			if names[m.Name] {
				t.Fatalf("module name %q twice", m.Name)
			}
			names[m.Name] = true
			if m.MaxTimers < 1 || m.MaxStoreValue < 1 {
				t.Fatalf("module %q: quotas %d, %d", m.Name, m.MaxTimers, m.MaxStoreValue)
			}
		}
		hs := cfg.HTTPServer
		for _, d := range []time.Duration{hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout} {
			if d < time.Millisecond || d > 24*time.Hour {
				t.Fatalf("http_server duration %s out of bounds", d)
			}
		}
		if hs.MaxConnections < 1 || hs.MaxHeaderBytes < 1 || hs.MaxResponseBody < 1 {
			t.Fatalf("http_server %+v", hs)
		}
	})
}
