package lpattern

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

var errStop = errors.New("deadline exceeded")

// stopAfter returns a Check that fails on its n-th call, and a counter of
// its calls.
func stopAfter(n int) (func() error, *int) {
	calls := 0
	return func() error {
		calls++
		if calls >= n {
			return errStop
		}
		return nil
	}, &calls
}

// hostile lists inputs that take the matcher (or its caller) very long or
// very deep; each must end with an error, not run on, overflow or panic.
var hostile = []struct {
	name, subject, pattern string
}{
	{"exponential lazy repetitions", strings.Repeat("a", 20000), strings.Repeat("a-", 20) + "b"},
	{"exponential greedy repetitions", strings.Repeat("a", 20000), strings.Repeat("a*", 20) + "b"},
	{"nested captures with lazy repetitions", strings.Repeat("a", 20000), strings.Repeat("(a-)", 20) + "b"},
	{"balance on a long unbalanced subject", strings.Repeat("(", 100000), "%b()"},
	{"back-reference rescans", strings.Repeat("a", 100000), "(.-)%1b"},
	{"frontier scan", strings.Repeat("ab", 50000), strings.Repeat("%f[a].-", 10) + "c"},
}

func TestCheckStopsHostileMatches(t *testing.T) {
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			check, calls := stopAfter(50)
			m, err := Compile(h.pattern).Find(h.subject, 0, &Options{Check: check})
			if !errors.Is(err, errStop) || m != nil {
				t.Fatalf("got %v, %v; want the check's error", m, err)
			}
			if *calls != 50 {
				t.Fatalf("check called %d times after it failed; want it to stop at once", *calls)
			}
			// The same through an iterator, as gsub and gmatch use it.
			check, _ = stopAfter(50)
			it := Compile(h.pattern).Iter(h.subject, &Options{Check: check})
			if _, err := it.Next(); !errors.Is(err, errStop) {
				t.Fatalf("Iter.Next: got %v; want the check's error", err)
			}
		})
	}
}

func TestStepLimitStopsHostileMatches(t *testing.T) {
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			check, calls := stopAfter(1 << 30)
			_, err := Compile(h.pattern).Find(h.subject, 0, &Options{Check: check, CheckEvery: 1000, MaxSteps: 1e6})
			if !errors.Is(err, ErrStepLimit) {
				t.Fatalf("got %v; want ErrStepLimit", err)
			}
			// The check runs every CheckEvery steps all along.
			if *calls < 500 || *calls > 1000 {
				t.Fatalf("check called %d times in 1e6 steps; want about 1e6/1000", *calls)
			}
		})
	}
}

// TestCheckCadence shows the check comes every CheckEvery steps whatever
// the work is (skipping ahead, repeating, recursing, comparing, balancing),
// give or take one bulk step of a skip or a back-reference. How long a step
// takes is measured by BenchmarkCheckGap.
func TestCheckCadence(t *testing.T) {
	const n = 1 << 16
	as, bs := strings.Repeat("a", n), strings.Repeat("b", n)
	for _, tc := range []struct{ subject, pattern string }{
		{as + bs, "c"},               // skip ahead with IndexByte
		{as + bs, "abc"},             // skip ahead with Index
		{as + bs, "[c]"},             // skip ahead over a set
		{as + bs, "^a.*c"},           // a long greedy repetition
		{as + bs, "^(.-)c"},          // a lazy one: a call per byte
		{as + "c" + as, "^(a*)c%1$"}, // a long back-reference
		{strings.Repeat("(", n) + strings.Repeat(")", n), "^%b()"},
		{strings.Repeat("a b ", n/4), "^" + strings.Repeat("%f[%w]%w+%s", n/4) + "$"},
	} {
		t.Run(tc.pattern[:min(len(tc.pattern), 12)], func(t *testing.T) {
			const every = 256
			var m matcher
			var last, worst int64
			opts := &Options{CheckEvery: every, MaxDepth: n, Check: func() error {
				worst = max(worst, m.Steps()-last)
				last = m.Steps()
				return nil
			}}
			m.reset(Compile(tc.pattern), tc.subject, opts)
			if err := m.protect(func() { m.find(0) }); err != nil {
				t.Fatal(err)
			}
			if m.Steps() < n/16 {
				t.Fatalf("%d steps for %d bytes of work; want one per 16 bytes at least", m.Steps(), n)
			}
			if worst > every+skipChunk>>4 {
				t.Fatalf("%d steps between two checks; want about %d", worst, every)
			}
		})
	}
}

func TestRecursionDepth(t *testing.T) {
	subject := strings.Repeat("a", 300)
	// 300 optional items nest 300 calls deep: past Lua 5.2's limit of 200,
	// which this package keeps by default.
	p := Compile(strings.Repeat("a?", 300))
	if _, err := p.Find(subject, 0, nil); !errors.Is(err, ErrTooComplex) || err.Error() != "pattern too complex" {
		t.Fatalf("got %v; want %q", err, ErrTooComplex)
	}
	// Lua 5.1 has no limit and matches it; so does this package with room.
	m, err := p.Find(subject, 0, &Options{MaxDepth: 1000})
	if err != nil || m == nil || m.Start != 0 || m.End != 300 {
		t.Fatalf("got %+v, %v; want a match of 0-300", m, err)
	}
	// 199 nested calls fit in the default.
	if m, err := Compile(strings.Repeat("a?", 198)).Find(subject, 0, nil); err != nil || m.End != 198 {
		t.Fatalf("got %+v, %v; want a match of 0-198", m, err)
	}
	// A huge pattern is bounded the same way, not by the Go stack.
	huge := Compile(strings.Repeat("a*", 1e6))
	if _, err := huge.Find(subject, 0, nil); !errors.Is(err, ErrTooComplex) {
		t.Fatalf("got %v; want ErrTooComplex", err)
	}
}

func TestTooManyCaptures(t *testing.T) {
	for _, pat := range []string{
		strings.Repeat("(", 1000),
		strings.Repeat("(a", 1000),
		strings.Repeat("()", 1000),
		strings.Repeat("(", 1000) + strings.Repeat(")", 1000),
	} {
		if _, err := Compile(pat).Find(strings.Repeat("a", 2000), 0, nil); err == nil || err.Error() != "too many captures" {
			t.Errorf("%.10q...: got %v; want too many captures", pat, err)
		}
	}
}

func TestPatternErr(t *testing.T) {
	for _, tc := range []struct{ pat, want string }{
		{"a%", "malformed pattern (ends with '%')"},
		{"[a", "malformed pattern (missing ']')"},
		{"%f", "missing '[' after '%f' in pattern"},
		{"%fx", "missing '[' after '%f' in pattern"},
		{"%b(", "unbalanced pattern"},
		{"%1", "invalid capture index"},
		{"(a%1)", "invalid capture index"},
		{"%0", "invalid capture index"},
		{"a)", "invalid pattern capture"},
		{strings.Repeat("()", 33), "too many captures"},
		{"^(a)%1[%]]$", ""},
		{"%f[%w]%b()", ""},
		{"a\x00%", ""}, // the pattern ends at the NUL
	} {
		err := Compile(tc.pat).Err()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Compile(%q).Err() = %q; want %q", tc.pat, got, tc.want)
		}
	}
}

func TestIterReusesMatch(t *testing.T) {
	s := "a1 b2 c3 d4"
	it := Compile("(%a)(%d)()").Iter(s, nil)
	var got []string
	for {
		m, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			break
		}
		got = append(got, s[m.Caps[0].Start:m.Caps[0].End]+s[m.Caps[1].Start:m.Caps[1].End])
		if m.Caps[2].Kind != CapPosition || m.Caps[2].Start != m.End {
			t.Fatalf("position capture %+v; want a position at %d", m.Caps[2], m.End)
		}
	}
	if strings.Join(got, ",") != "a1,b2,c3,d4" {
		t.Fatalf("got %v", got)
	}
	if m, err := it.Next(); m != nil || err != nil {
		t.Fatalf("after the end: got %v, %v", m, err)
	}
}

func TestCacheBounded(t *testing.T) {
	c := NewCache(4)
	p := c.Compile("(%w+)=(%w+)")
	if c.Compile("(%w+)=(%w+)") != p {
		t.Fatal("a second Compile of the same pattern compiled it again")
	}
	if g := c.CompileGmatch("(%w+)=(%w+)"); g == p {
		t.Fatal("CompileGmatch returned the Compile form")
	}
	if !c.Compile("^a").Anchored() || c.CompileGmatch("^a").Anchored() {
		t.Fatal("gmatch's '^' must be literal, the others' an anchor")
	}
	for i := range 100 {
		c.Compile(strings.Repeat("a", i))
	}
	if n := c.cur.Load().n.Load(); n > 4 {
		t.Fatalf("cache holds %d patterns; want at most 4", n)
	}
	long := strings.Repeat("x", MaxCachedLen+1)
	if c.Compile(long) == c.Compile(long) {
		t.Fatal("a pattern longer than MaxCachedLen was cached")
	}
}

// TestMemoryBounded shows what a hostile pattern costs: compiling takes
// memory in proportion to the pattern (a few dozen bytes per byte), and
// matching allocates nothing but its result, however long it runs.
func TestMemoryBounded(t *testing.T) {
	for _, pat := range []string{
		strings.Repeat(".", 1e5),
		strings.Repeat("[ab]", 25000),
		strings.Repeat("a?", 5e4),
		strings.Repeat("%d", 5e4),
		strings.Repeat("()", 5e4),
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p := Compile(pat)
		runtime.ReadMemStats(&after)
		if per := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(pat)); per > 100 {
			t.Errorf("compiling %.8q... took %.0f bytes per pattern byte; want at most 100", pat, per)
		}
		runtime.KeepAlive(p)
	}
	for _, h := range hostile {
		p := Compile(h.pattern)
		allocs := testing.AllocsPerRun(3, func() {
			p.Find(h.subject, 0, &Options{MaxSteps: 1e5})
		})
		if allocs > 1 {
			t.Errorf("%s: %.0f allocations per Find; want at most the result", h.name, allocs)
		}
	}
}
