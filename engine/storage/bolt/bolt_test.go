package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/luahost/luahost/engine/storage"
	"github.com/luahost/luahost/engine/storage/storagetest"
)

func TestBolt(t *testing.T) {
	dir := t.TempDir()
	storagetest.Run(t, func(t *testing.T) storage.Store {
		// The same subtest reopens the same file.
		path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".db")
		s, err := storage.Open(storage.Config{Backend: "bolt", Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// go test -run '^$' -bench . ./engine/storage/bolt/
func BenchmarkStore(b *testing.B) {
	storagetest.Benchmark(b, func(b *testing.B) storage.Store {
		s, err := storage.Open(storage.Config{Backend: "bolt", Path: filepath.Join(b.TempDir(), "storage.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltDefaultBackendAndParentDirs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "nested", storage.DefaultFile)
	s, err := storage.Open(storage.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*boltStore); !ok {
		t.Fatalf("default backend is %T; want bolt", s)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file: %v, %v", fi, err)
	}
	if got := storage.DefaultPath("/srv/luahost-data"); got != "/srv/luahost-data/storage.db" {
		t.Fatalf("DefaultPath = %q", got)
	}
}

func TestBoltOpenErrors(t *testing.T) {
	if _, err := storage.Open(storage.Config{Backend: "bolt"}); err == nil || !strings.Contains(err.Error(), "bolt") {
		t.Fatalf("no path: %v", err)
	}
	// A path whose parent is a file cannot be created.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(file, "storage.db")
	if _, err := storage.Open(storage.Config{Backend: "bolt", Path: path}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("bad path: %v", err)
	}
	if _, err := storage.Open(storage.Config{Backend: "etcd"}); err == nil || !strings.Contains(err.Error(), `"etcd"`) {
		t.Fatalf("unknown backend: %v", err)
	}
}

func TestBoltLocked(t *testing.T) {
	old := boltLockTimeout
	boltLockTimeout = 200 * time.Millisecond
	defer func() { boltLockTimeout = old }()

	path := filepath.Join(t.TempDir(), "storage.db")
	first, err := storage.Open(storage.Config{Backend: "bolt", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// flock is per open file, so a second open in this process meets the lock just like a
	// second luahost process would.
	start := time.Now()
	_, err = storage.Open(storage.Config{Backend: "bolt", Path: path})
	want := "storage: bolt database " + path + " is locked by another process"
	if err == nil || err.Error() != want {
		t.Fatalf("second Open: %v; want %q", err, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second Open took %v", d)
	}
	first.Close()
	again, err := storage.Open(storage.Config{Backend: "bolt", Path: path})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	again.Close()
}

func TestBoltSweep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "storage.db")
	st, err := openBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// More expired keys than one sweep batch, across two namespaces, plus live ones and a
	// record too short to hold a header.
	past := time.Now().Add(-time.Second).UnixNano()
	err = st.db.Update(func(tx *bbolt.Tx) error {
		for _, ns := range []string{"one", "two"} {
			b, err := tx.CreateBucketIfNotExists([]byte(ns))
			if err != nil {
				return err
			}
			for i := 0; i < boltSweepBatch+200; i++ {
				if err := b.Put([]byte(fmt.Sprintf("exp%05d", i)), encodeBolt([]byte(`1`), past)); err != nil {
					return err
				}
			}
			if err := b.Put([]byte("live"), encodeBolt([]byte(`1`), 0)); err != nil {
				return err
			}
			if err := b.Put([]byte("later"), encodeBolt([]byte(`1`), time.Now().Add(time.Hour).UnixNano())); err != nil {
				return err
			}
			if err := b.Put([]byte("short"), []byte{1, 2}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.sweep(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"one", "two"} {
		var keys []string
		st.db.View(func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte(ns)).ForEach(func(k, _ []byte) error {
				keys = append(keys, string(k))
				return nil
			})
		})
		if strings.Join(keys, ",") != "later,live" {
			t.Fatalf("%s after sweep: %q", ns, keys)
		}
	}
}

func TestBoltExpiredReadDeletes(t *testing.T) {
	st, err := openBolt(filepath.Join(t.TempDir(), "storage.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.Set(ctx, "ns", "k", []byte(`1`), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, found, err := st.Get(ctx, "ns", "k"); found || err != nil {
		t.Fatalf("Get expired: %v, %v", found, err)
	}
	st.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("ns")).Get([]byte("k")); v != nil {
			t.Errorf("expired key still stored after Get: %q", v)
		}
		return nil
	})
}

// Writes committed together must not fail each other: a usage error stays with its caller,
// and a transaction that fails is redone one write at a time.
func TestBoltGroupCommitIsolation(t *testing.T) {
	st, err := openBolt(filepath.Join(t.TempDir(), "storage.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.Set(ctx, "ns", "text", []byte(`"abc"`), 0); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var wg sync.WaitGroup
	for g := 0; g < 30; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				switch g % 3 {
				case 0:
					if _, err := st.Incr(ctx, "ns", "counter", 1, 0); err != nil {
						t.Error(err)
					}
				case 1:
					if _, err := st.Incr(ctx, "ns", "text", 1, 0); !errors.Is(err, storage.ErrNotInteger) {
						t.Errorf("Incr on text: %v", err)
					}
				case 2:
					err := st.write(ctx, func(tx *bbolt.Tx) error {
						if err := tx.Bucket([]byte("ns")).Put([]byte("failed"), encodeBolt([]byte(`1`), 0)); err != nil {
							return err
						}
						return boom
					})
					if !errors.Is(err, boom) {
						t.Errorf("failing write: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if v, _, _ := st.Get(ctx, "ns", "counter"); string(v) != "100" {
		t.Fatalf("counter = %q; want 100", v)
	}
	if _, found, _ := st.Get(ctx, "ns", "failed"); found {
		t.Fatal("a failed write's changes were committed")
	}
	if v, _, _ := st.Get(ctx, "ns", "text"); string(v) != `"abc"` {
		t.Fatalf("text = %q", v)
	}
}
