package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/internal/invoke"
	"github.com/luahost/luahost/internal/sandbox"
)

// callFlags are `luahost call`'s own flags.
type callFlags struct {
	fixture string
	store   string
}

func (c *callFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.fixture, "fixture", "", "seed the in-memory homeserver from this JSON file (users, rooms, account_data, threepids; see docs/testing.md)")
	fs.StringVar(&c.store, "store", "memory", "api.store for this call: memory (empty at every call) or config (the config's storage:, e.g. the bolt file serve uses)")
}

// loadForCall starts the engine as `luahost call` needs it: on a fresh
// in-memory homeserver seeded from the fixture, with an empty memory store
// unless --store config asks for the configured one (which a running
// serve may hold locked).
func loadForCall(ctx context.Context, o opts, c callFlags, log *slog.Logger) (*engine.Engine, func(), error) {
	cfg, err := engine.LoadConfig(o.config)
	if err != nil {
		return nil, nil, err
	}
	server := cfg.ServerName
	if server == "" {
		server = "localhost"
	}
	host := memhost.New(server)
	if c.fixture != "" {
		data, err := os.ReadFile(c.fixture)
		if err != nil {
			return nil, nil, fmt.Errorf("--fixture: %w", err)
		}
		f, err := memhost.ParseFixture(data)
		if err != nil {
			return nil, nil, fmt.Errorf("--fixture %s: %w", c.fixture, err)
		}
		if err := host.Seed(f); err != nil {
			return nil, nil, fmt.Errorf("--fixture %s: %w", c.fixture, err)
		}
	}
	eopts := engine.Options{Host: host, Logger: log, HostHonoursContext: true} // memhost never blocks
	var store storage.Store
	switch c.store {
	case "memory":
		store = storage.NewMemory(nil)
		eopts.Store = store
	case "config":
	default:
		return nil, nil, fmt.Errorf("--store %q: use memory or config", c.store)
	}
	eng, err := engine.New(ctx, cfg, eopts)
	closeAll := func() {
		eng.Close()
		if store != nil {
			store.Close()
		}
	}
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return eng, closeAll, nil
}

// callArgs checks the JSON arguments of `luahost call`.
func callArgs(args []string) ([]json.RawMessage, error) {
	raw := make([]json.RawMessage, 0, len(args))
	for i, a := range args {
		if !json.Valid([]byte(a)) {
			hint := ""
			if s := strings.TrimSpace(a); s != "" && !strings.ContainsAny(s[:1], `{["0123456789-`) {
				// A bare word: the shell ate the quotes, or there were none.
				q, _ := json.Marshal(sandbox.Clip(s))
				hint = fmt.Sprintf(" (strings are JSON strings: quote them, e.g. '%s')", q)
			}
			return nil, fmt.Errorf("argument %d is not valid JSON: %s%s", i+1, sandbox.Clip(a), hint)
		}
		raw = append(raw, json.RawMessage(a))
	}
	return raw, nil
}

// callExit is `luahost call`'s exit status for an error: 2 when the
// callback is one no module registered (the question was wrong), 1 when
// the call failed.
func callExit(stderr io.Writer, err error) int {
	printErr(stderr, err)
	var nr *invoke.NotRegisteredError
	if errors.As(err, &nr) {
		return 2
	}
	return 1
}
