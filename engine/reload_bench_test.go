package engine_test

import (
	"context"
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"
	"testing/fstest"

	. "github.com/luahost/luahost/engine"

	"github.com/luahost/luahost/cmd/luahost/memhost"
)

// Reload latency and memory (issue 7): how long from saving a module to
// the first check answered by the new generation, for a 1,000-line module
// and for a small one, and whether 1,000 reloads give their memory back.
//
//	go test -run '^$' -bench Reload -benchtime 200x ./engine/
//	go test -run TestReloadMemory -v ./engine/

// bigModuleLines is the size of the generated module.
const bigModuleLines = 1000

// bigModule generates a module of exactly bigModuleLines lines: many small
// local functions (in do-blocks, below Lua's 200-locals limit), a spam
// check that rejects the body "v<version>" and a web resource. Only the
// version differs between versions.
func bigModule(version int) string {
	const tail = `local M = {}
function M.new(config, api)
  api.register_spam_checker_callbacks{
    check_event_for_spam = function(ev)
      local body = ev.content.body
      if body == "v%[1]d" then return "M_FORBIDDEN" end
      if type(body) == "string" and F[(#body %% #F) + 1](#body) < 0 then return "M_FORBIDDEN" end
      return api.NOT_SPAM
    end,
  }
  api.register_web_resource("/_synapse/client/big", function(request)
    local acc = 0
    for i = 1, #F do acc = acc + F[i](i) end
    return { json = { version = %[1]d, acc = acc } }
  end)
end
return M
`
	tailLines := strings.Count(tail, "\n")
	var lines []string
	lines = append(lines, fmt.Sprintf("-- generated: a %d-line module, version %d", bigModuleLines, version), "local F = {}")
	const perBlock = 20 // functions per do-block
	const perFunc = 6   // lines per function, its F[n] = line included
	n := 0
	for len(lines)+2+perFunc+tailLines <= bigModuleLines {
		lines = append(lines, "do")
		for k := 0; k < perBlock && len(lines)+1+perFunc+tailLines <= bigModuleLines; k++ {
			n++
			lines = append(lines,
				fmt.Sprintf("  local function f%d(x)", n),
				fmt.Sprintf("    local y = x * %d + 3", n),
				"    if y % 2 == 0 then return y / 2 end",
				"    return y - 1",
				"  end",
				fmt.Sprintf("  F[%d] = f%d", n, n))
		}
		lines = append(lines, "end")
	}
	for len(lines)+tailLines < bigModuleLines {
		lines = append(lines, "-- padding")
	}
	return strings.Join(lines, "\n") + "\n" + fmt.Sprintf(tail, version)
}

// smallModule is the baseline: a spam check rejecting "v<version>".
func smallModule(version int) string {
	return fmt.Sprintf(`return { new = function(c, api) api.register_spam_checker_callbacks{
	check_event_for_spam = function(ev)
		if ev.content.body == "v%d" then return "M_FORBIDDEN" end
		return api.NOT_SPAM
	end } end }
`, version)
}

func TestBigModuleIsWhatItSays(t *testing.T) {
	src := bigModule(7)
	if n := strings.Count(src, "\n"); n != bigModuleLines {
		t.Fatalf("bigModule has %d lines, want %d", n, bigModuleLines)
	}
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": src})
	if v := r.verdict("v7"); v != "M_FORBIDDEN" {
		t.Errorf("v7: %s", v)
	}
	if v := r.verdict("hello"); v != "allow" {
		t.Errorf("hello: %s", v)
	}
	if len(r.e.Paths()) != 1 {
		t.Errorf("paths: %v", r.e.Paths())
	}
}

// benchReload measures save → ReloadWith (what Watch calls after its
// debounce) → the first CheckEventForSpam answered by the new generation.
// The old generation's retirement (on_close, closing its state) happens
// inside ReloadWith and is counted.
func benchReload(b *testing.B, module func(int) string) {
	cfg, err := ParseConfig([]byte(oneModule), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	// Two versions, alternated: every save changes the file.
	srcs := [2][]byte{[]byte(module(0)), []byte(module(1))}
	fsys := fstest.MapFS{"spam.lua": &fstest.MapFile{Data: srcs[0]}}
	e, err := New(context.Background(), cfg, Options{FS: fsys, Logger: quiet, Host: memhost.New("example.org")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	ctx := context.Background()
	probes := [2]*Event{msg("@a:example.org", "v0"), msg("@a:example.org", "v1")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		v := i % 2
		fsys["spam.lua"] = &fstest.MapFile{Data: srcs[v]}
		if err := e.ReloadWith(ctx, cfg, nil); err != nil {
			b.Fatal(err)
		}
		d, err := e.CheckEventForSpam(ctx, probes[v])
		if err != nil {
			b.Fatal(err)
		}
		if d.Allowed() {
			b.Fatalf("reload %d: the first check after the reload was answered by the old generation", i)
		}
	}
}

func BenchmarkReload1000LineModule(b *testing.B) { benchReload(b, bigModule) }

func BenchmarkReloadSmallModule(b *testing.B) { benchReload(b, smallModule) }

// TestReloadMemory reloads the 1,000-line module 1,000 times and compares
// the live heap before and after. Retired generations must be freed: a
// gross growth means something (a snapshot, a timer, a callback binding)
// still holds them.
func TestReloadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 reloads of a 1,000-line module; skipped with -short")
	}
	r := newReloadRig(t, oneModule, map[string]string{"spam.lua": bigModule(0)})
	heap := func() uint64 {
		var ms goruntime.MemStats
		goruntime.GC()
		goruntime.GC()
		goruntime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// One reload first, so that lazily built caches are in "before".
	r.write("spam.lua", bigModule(1))
	if err := r.reload(oneModule); err != nil {
		t.Fatal(err)
	}
	before := heap()
	goroutines := goruntime.NumGoroutine()
	const reloads = 1000
	for i := 2; i < 2+reloads; i++ {
		r.write("spam.lua", bigModule(i))
		if err := r.reload(oneModule); err != nil {
			t.Fatal(err)
		}
	}
	last := fmt.Sprintf("v%d", 1+reloads)
	if v := r.verdict(last); v != "M_FORBIDDEN" {
		t.Fatalf("after %d reloads the last version should answer: %s", reloads, v)
	}
	after := heap()
	growth := int64(after) - int64(before)
	const mib = 1 << 20
	t.Logf("HeapAlloc after GC: %.1f MiB before, %.1f MiB after %d reloads of a %d-line module (%+.2f MiB); goroutines %d -> %d",
		float64(before)/mib, float64(after)/mib, reloads, bigModuleLines, float64(growth)/mib, goroutines, goruntime.NumGoroutine())
	if growth > 50*mib {
		t.Errorf("the heap grew by %.1f MiB over %d reloads: retired generations are not freed", float64(growth)/mib, reloads)
	}
}
