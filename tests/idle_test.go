package tests

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// An idle `luahost serve` must cost no CPU (issue 13): with 100 modules
// loaded and no traffic it uses < 1% of a core over 10 s, and after a
// burst of requests it is back under 1% within 100 ms. A runtime that
// spins, polls or ticks while nothing is in flight fails here.
//
// It measures the server process's own CPU time (/proc), which other
// processes on a loaded machine do not inflate; they can only delay the
// server's work, never add to it.

const (
	idleModules   = 100
	idleWindow    = 10 * time.Second
	idleBurst     = 2000 // requests
	idleAfter     = 100 * time.Millisecond
	idleAfterSpan = 2 * time.Second
	idleMaxShare  = 0.01 // of one core
)

// idleModule is a small module: a web resource, a spam checker, and for
// every tenth one a background call that is due only in an hour.
const idleModule = `return { new = function(config, api)
	api.register_web_resource(config.path, { GET = function(request)
		return { status = 200, json = { module = config.n } }
	end })
	api.register_spam_checker_callbacks{ check_event_for_spam = function(ev) return "NOT_SPAM" end }
	if config.n % 10 == 0 then
		api.looping_background_call(function() end, 3600000)
	end
end }
`

func idleConfig() string {
	var sb strings.Builder
	sb.WriteString("server_name: example.org\nstorage:\n  backend: memory\nmodules:\n")
	for i := 1; i <= idleModules; i++ {
		fmt.Fprintf(&sb, "  - module: m.lua\n    name: m%d\n    config: {n: %d, path: %s}\n", i, i, idlePath(i))
	}
	return sb.String()
}

func idlePath(i int) string { return fmt.Sprintf("/_synapse/client/idle/m%d", i) }

// cpuClock is a process's CPU time so far, read two ways: utime+stime of
// /proc/PID/stat (whole process, dead threads included, in clock ticks
// of 10 ms), and the sum of its threads' run time in
// /proc/PID/task/*/schedstat (nanoseconds, live threads only).
type cpuClock struct {
	stat     time.Duration
	sched    time.Duration
	threads  map[string]bool
	schedOK  bool
	wallTime time.Time
}

// clockTick is USER_HZ, which Linux fixes at 100 for /proc.
const clockTick = 10 * time.Millisecond

func readCPU(t *testing.T, pid int) cpuClock {
	t.Helper()
	c := cpuClock{wallTime: time.Now(), threads: map[string]bool{}, schedOK: true}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read the server's CPU time: %v", err)
	}
	// Fields after the command name (which may hold spaces) start at
	// field 3 (state); utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: too few fields: %q", pid, s)
	}
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		c.stat += time.Duration(n) * clockTick
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		c.schedOK = false
		return c
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			c.schedOK = false // a thread ended while we read
			continue
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			c.schedOK = false
			continue
		}
		c.sched += time.Duration(ns)
		c.threads[filepath.Base(filepath.Dir(p))] = true
	}
	return c
}

// cpuUse is the CPU a process used between two readings, as a share of
// one core, with how it was measured. The nanosecond schedstat sum is
// used when no thread ended in between (it would take its time with it);
// else the tick-granular /proc/PID/stat.
type cpuUse struct {
	used, wall time.Duration
	statUsed   time.Duration
	source     string
}

func (u cpuUse) share() float64 { return float64(u.used) / float64(u.wall) }

func (u cpuUse) String() string {
	return fmt.Sprintf("%v of CPU in %v = %.2f%% of a core (%s; /proc/PID/stat says %v)",
		u.used.Round(10*time.Microsecond), u.wall.Round(time.Millisecond), 100*u.share(), u.source, u.statUsed)
}

func cpuBetween(a, b cpuClock) cpuUse {
	u := cpuUse{wall: b.wallTime.Sub(a.wallTime), statUsed: b.stat - a.stat}
	lost := !a.schedOK || !b.schedOK
	for tid := range a.threads {
		if !b.threads[tid] {
			lost = true
		}
	}
	if lost {
		u.used, u.source = u.statUsed, "utime+stime, 10 ms ticks"
	} else {
		u.used, u.source = b.sched-a.sched, "threads' schedstat"
	}
	return u
}

// measureCPU reads the server's CPU use over span.
func measureCPU(t *testing.T, pid int, span time.Duration) cpuUse {
	t.Helper()
	a := readCPU(t, pid)
	time.Sleep(span)
	return cpuBetween(a, readCPU(t, pid))
}

func TestIdleServeUsesNoCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("starts luahost serve with 100 modules and watches its CPU use for about 20 s; not under -short")
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("needs Linux /proc to read a process's CPU time: %v", err)
	}
	s := startReloadServer(t, map[string]string{"luahost.yaml": idleConfig(), "m.lua": idleModule})
	pid := s.cmd.Process.Pid
	for _, i := range []int{1, idleModules} {
		if code, body := s.get(idlePath(i)); code != http.StatusOK {
			t.Fatalf("GET %s: %d %s\nserver log:\n%s", idlePath(i), code, body, s.log())
		}
	}
	if rss, ok := rssOf(pid); ok {
		t.Logf("RSS with %d modules loaded: %.1f MiB", idleModules, float64(rss)/(1<<20))
	}

	// Settle: start-up work (the first GCs, the scavenger returning
	// memory) may run for a moment; wait for a quiet second, for up to
	// 15 s, then judge the next 10 s whatever happened.
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if u := measureCPU(t, pid, time.Second); u.share() < idleMaxShare {
			break
		}
	}
	idle := measureCPU(t, pid, idleWindow)
	t.Logf("idle, %d modules, %v: %v", idleModules, idleWindow, idle)
	if idle.share() >= idleMaxShare {
		t.Errorf("an idle luahost serve with %d modules used %v; want < %.0f%% of a core",
			idleModules, idle, 100*idleMaxShare)
	}

	// A burst over every module's web resource, from 8 clients.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	before := readCPU(t, pid)
	var wg sync.WaitGroup
	errs := make(chan error, idleBurst)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				resp, err := client.Get(s.url + idlePath(1+i%idleModules))
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("request %d: status %d", i, resp.StatusCode)
				}
			}
		}()
	}
	for i := range idleBurst {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("burst: %v\nserver log:\n%s", err, s.log())
	}
	client.CloseIdleConnections()
	burst := cpuBetween(before, readCPU(t, pid))
	t.Logf("burst of %d requests: %v", idleBurst, burst)

	time.Sleep(idleAfter)
	after := measureCPU(t, pid, idleAfterSpan)
	t.Logf("from %v after the burst, for %v: %v", idleAfter, idleAfterSpan, after)
	if after.share() >= idleMaxShare {
		t.Errorf("from %v after a burst of %d requests, luahost serve used %v; want < %.0f%% of a core",
			idleAfter, idleBurst, after, 100*idleMaxShare)
	}
	s.stop()
}
