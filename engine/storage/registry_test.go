package storage_test

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/engine/storage/storagetest"
)

func openMemory(t testing.TB) storage.Store {
	s, err := storage.Open(storage.Config{Backend: "memory"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMemory(t *testing.T) {
	storagetest.RunEphemeral(t, func(t *testing.T) storage.Store { return openMemory(t) })
}

// go test -run '^$' -bench . ./engine/storage/...  (with LUAHOST_TEST_REDIS_URL for redis)
func BenchmarkStore(b *testing.B) {
	storagetest.Benchmark(b, func(b *testing.B) storage.Store { return openMemory(b) })
}

// This test binary imports engine/storage and storagetest only, so it shows what an embedder
// gets without the blank imports.
func TestBackendsNotLinked(t *testing.T) {
	if got := storage.Backends(); slices.Contains(got, "bolt") || slices.Contains(got, "redis") || !slices.Contains(got, "memory") {
		t.Fatalf("Backends() = %q; want memory and neither bolt nor redis", got)
	}
	for _, c := range []struct{ backend, want string }{
		{"redis", `storage backend "redis" is not linked into this program: import _ "github.com/luahost/luahost/engine/storage/redis"`},
		{"bolt", `storage backend "bolt" is not linked into this program: import _ "github.com/luahost/luahost/engine/storage/bolt"`},
		{" Redis ", `storage backend "redis" is not linked into this program: import _ "github.com/luahost/luahost/engine/storage/redis"`},
		{"", `storage backend "bolt" is not linked into this program: import _ "github.com/luahost/luahost/engine/storage/bolt"`}, // the default
		{"etcd", `storage: unknown backend "etcd" (this program has: memory`},
	} {
		s, err := storage.Open(storage.Config{Backend: c.backend, Path: t.TempDir() + "/storage.db", URL: "redis://127.0.0.1:1/0"})
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", c.backend)
		}
		if !strings.HasPrefix(err.Error(), c.want) || storage.IsUnavailable(err) {
			t.Errorf("Open(%q) = %v; want %q, not an outage", c.backend, err, c.want)
		}
	}
}

// An embedder that imports engine/storage (as package engine does) links neither client
// library; the lists in go.mod would not show a regression, go list does.
func TestImportLinksNoClient(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies with")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/luahost/luahost/engine/storage") {
		t.Fatalf("go list -deps did not list the package itself: %q", deps)
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "go.etcd.io/bbolt") || strings.HasPrefix(dep, "github.com/redis/go-redis") {
			t.Errorf("importing engine/storage links %s", dep)
		}
	}
}

type fakeStore struct{ storage.Store }

// registered counts TestRegister's runs: the registry outlives a run (go test -count=2).
var registered int

func TestRegister(t *testing.T) {
	registered++
	name := fmt.Sprintf("test-fake%d", registered)
	opened := 0
	storage.Register(name, func(cfg storage.Config) (storage.Store, error) {
		opened++
		if cfg.URL != "fake://x" {
			return nil, errors.New("config not passed on")
		}
		return fakeStore{}, nil
	})
	s, err := storage.Open(storage.Config{Backend: strings.ToUpper(name), URL: "fake://x"})
	if _, ok := s.(fakeStore); !ok || err != nil || opened != 1 {
		t.Fatalf("Open(registered backend) = %T, %v after %d opens", s, err, opened)
	}
	if got := storage.Backends(); !slices.IsSorted(got) || !slices.Contains(got, name) {
		t.Fatalf("Backends() = %q; want sorted, with %s", got, name)
	}
	_, err = storage.Open(storage.Config{Backend: "etcd"})
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("unknown backend error does not list the registered ones: %v", err)
	}

	for _, c := range []struct {
		name string
		open func(storage.Config) (storage.Store, error)
		want string
	}{
		{name, func(storage.Config) (storage.Store, error) { return nil, nil }, `luahost: storage.Register: backend "` + name + `" registered twice`},
		{"memory", func(storage.Config) (storage.Store, error) { return nil, nil }, `luahost: storage.Register: backend "memory" registered twice`},
		{"nil-open", nil, `luahost: storage.Register: nil open function for backend "nil-open"`},
		{"", func(storage.Config) (storage.Store, error) { return nil, nil }, `luahost: storage.Register: invalid backend name ""`},
		{"Upper", func(storage.Config) (storage.Store, error) { return nil, nil }, `luahost: storage.Register: invalid backend name "Upper"`},
		{"two words", func(storage.Config) (storage.Store, error) { return nil, nil }, `luahost: storage.Register: invalid backend name "two words"`},
	} {
		func() {
			defer func() {
				if r, _ := recover().(string); !strings.HasPrefix(r, c.want) {
					t.Errorf("Register(%q) panicked with %q; want %q", c.name, r, c.want)
				}
			}()
			storage.Register(c.name, c.open)
		}()
	}
}
