package lpattern

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/yuin/gopher-lua/pm"
)

// Benchmarks against gopher-lua's pm matcher on the same inputs. pm parses
// its pattern on every call, as string.find does with it; the "lpattern"
// runs compile on every call too, and "lpattern-cache" take the pattern
// from a Cache.

var benchInputs = []struct {
	name, subject, pattern string
	all                    bool // every match, as gmatch and gsub need
}{
	{"userid", "@alice.smith:matrix.example.org", "^@([^:]+):(.+)$", false},
	{"userid-nomatch", "!roomid1234567890:matrix.example.org", "^@([^:]+):(.+)$", false},
	{"split-space", strings.Repeat("lorem ipsum dolor  sit amet, ", 20), "%s+", true},
	{"words", strings.Repeat("lorem ipsum dolor  sit amet, ", 20), "%a+", true},
	{"key-value", "a=1&bb=22&ccc=333&dddd=4444&eeeee=55555&user=alice&room=lobby", "(%w+)=(%w+)", true},
	{"trim", "   some text with spaces around   ", "^%s*(.-)%s*$", false},
	{"find-literal-late", strings.Repeat("x", 1000) + "needle", "needle%d*", false},
	{"backtracking", strings.Repeat("a", 40), "a-a-a-b", false},
}

func BenchmarkMatch(b *testing.B) {
	for _, in := range benchInputs {
		limit := 1
		if in.all {
			limit = -1
		}
		src := []byte(in.subject)
		b.Run(in.name+"/pm", func(b *testing.B) {
			for b.Loop() {
				if _, err := pm.Find(in.pattern, src, 0, limit); err != nil {
					b.Fatal(err)
				}
			}
		})
		run := func(b *testing.B, p func() *Pattern) {
			for b.Loop() {
				if !in.all {
					if _, err := p().Find(in.subject, 0, nil); err != nil {
						b.Fatal(err)
					}
					continue
				}
				it := p().Iter(in.subject, nil)
				for {
					m, err := it.Next()
					if err != nil {
						b.Fatal(err)
					}
					if m == nil {
						break
					}
				}
			}
		}
		b.Run(in.name+"/lpattern", func(b *testing.B) {
			run(b, func() *Pattern { return Compile(in.pattern) })
		})
		cache := NewCache(64)
		b.Run(in.name+"/lpattern-cache", func(b *testing.B) {
			run(b, func() *Pattern { return cache.Compile(in.pattern) })
		})
	}
}

// BenchmarkPathological runs the hostile cases under a 1 ms deadline
// checked by Check and reports how long past the deadline each match took
// to stop: the median and the worst (wall clock, so the worst includes any
// time the machine ran something else). pm cannot be stopped and does not
// finish these.
func BenchmarkPathological(b *testing.B) {
	for _, h := range hostile {
		b.Run(h.name, func(b *testing.B) {
			p := Compile(h.pattern)
			var overs []time.Duration
			for b.Loop() {
				deadline := time.Now().Add(time.Millisecond)
				errLate := errors.New("deadline")
				_, err := p.Find(h.subject, 0, &Options{Check: func() error {
					if time.Now().After(deadline) {
						return errLate
					}
					return nil
				}})
				if err != errLate {
					b.Fatalf("got %v; want the deadline error", err)
				}
				overs = append(overs, time.Since(deadline))
			}
			slices.Sort(overs)
			b.ReportMetric(float64(overs[len(overs)/2].Nanoseconds())/1000, "median-overshoot-µs")
			b.ReportMetric(float64(overs[len(overs)-1].Nanoseconds())/1000, "max-overshoot-µs")
		})
	}
}

// BenchmarkCheckGap reports the time between two calls of Check with the
// default CheckEvery, over the hostile cases and long linear scans: the
// latency a deadline can have. Time is the thread's CPU time where the
// system offers it (see threadTime), so a busy machine does not inflate it.
func BenchmarkCheckGap(b *testing.B) {
	const n = 1 << 20
	as := strings.Repeat("a", n)
	cases := append([]struct{ name, subject, pattern string }{
		{"skip-byte", as, "b"},
		{"skip-set", as, "[b]"},
		{"greedy", as, "^a*b"},
		{"lazy", as, "^.-b"},
		{"backref", as + "c" + as, "^(a*)c%1$"},
	}, hostile...)
	for _, h := range cases {
		b.Run(h.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			p := Compile(h.pattern)
			// Allocated up front: no allocation (and GC work) in the check.
			gaps := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				last := threadTime()
				calls := 0
				_, err := p.Find(h.subject, 0, &Options{MaxDepth: n, Check: func() error {
					now := threadTime()
					if len(gaps) < cap(gaps) {
						gaps = append(gaps, now-last)
					}
					last = threadTime()
					if calls++; calls == 1000 {
						return errStop
					}
					return nil
				}})
				if err != nil && err != errStop {
					b.Fatal(err)
				}
			}
			if len(gaps) == 0 {
				return
			}
			slices.Sort(gaps)
			b.ReportMetric(float64(gaps[len(gaps)/2].Nanoseconds())/1000, "median-gap-µs")
			b.ReportMetric(float64(gaps[len(gaps)*99/100].Nanoseconds())/1000, "p99-gap-µs")
			b.ReportMetric(float64(gaps[len(gaps)-1].Nanoseconds())/1000, "max-gap-µs")
		})
	}
}
