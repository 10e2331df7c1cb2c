package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/luahost/luahost/engine/storage"
	_ "github.com/luahost/luahost/engine/storage/redis"
)

// Several luahost instances behind one homeserver (issue 18, docs/instances.md): three
// `luahost serve` processes on one config and one Redis server elect the instance that runs
// the background tasks through a lease. A looping call records every run (its instance and
// start and end times) in Redis, so the test sees who ran what, and when.

const (
	instancesLease    = 2 * time.Second
	instancesInterval = 100 * time.Millisecond
)

const instancesModule = `local M = {}
function M.new(config, api)
  api.looping_background_call(function()
    local t0 = api.get_current_time_msec()
    local n = api.store.incr("runs")
    api.store.set("run:" .. n, {i = api.worker_name, t0 = t0, t1 = api.get_current_time_msec()})
  end, 100)
end
return M
`

type instanceRun struct {
	N      int
	I      string
	T0, T1 int64
}

// instancesRedisURL is the test Redis server (see .ci/redis.sh): the test is skipped without
// one, except in CI, which must run it.
func instancesRedisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("LUAHOST_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("LUAHOST_TEST_REDIS_URL not set, and CI must run the Redis tests: eval \"$(bash .ci/redis.sh start)\"")
		}
		t.Skip("needs a Redis server: LUAHOST_TEST_REDIS_URL not set; start one with: eval \"$(bash .ci/redis.sh start)\"")
	}
	return u
}

func TestInstancesElectOneForBackgroundTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three `luahost serve` processes for about 15 s; skipped with -short")
	}
	url := instancesRedisURL(t)
	// A fresh module name (the store namespace) and server name (the lease) per run, so runs
	// sharing the Redis server do not meet.
	run := fmt.Sprintf("inst%x", time.Now().UnixNano())
	dir := t.TempDir()
	config := fmt.Sprintf(`server_name: %s.example.org
storage:
  backend: redis
  url: %s
run_background_tasks_on: any
background_lease: %s
modules:
  - module: bg.lua
    name: %s
`, run, url, instancesLease, run)
	for name, src := range map[string]string{"luahost.yaml": config, "bg.lua": instancesModule} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := storage.Open(storage.Config{Backend: "redis", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	t.Cleanup(func() {
		keys, _ := st.List(ctx, run, "")
		for _, k := range keys {
			st.Delete(ctx, run, k)
		}
	})

	// runs reads every recorded run, in the order of the counter.
	runs := func() []instanceRun {
		t.Helper()
		n, err := st.Incr(ctx, run, "runs", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []instanceRun
		for i := 1; i <= int(n); i++ {
			v, found, err := st.Get(ctx, run, fmt.Sprint("run:", i))
			if err != nil {
				t.Fatal(err)
			}
			if !found {
				continue // counted; its record is being written
			}
			r := instanceRun{N: i}
			if err := json.Unmarshal(v, &r); err != nil {
				t.Fatalf("run:%d = %s: %v", i, v, err)
			}
			out = append(out, r)
		}
		return out
	}
	// waitRuns polls until cond holds for the runs, for at most d.
	waitRuns := func(what string, d time.Duration, cond func([]instanceRun) bool) []instanceRun {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			rs := runs()
			if cond(rs) {
				return rs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; runs by instance: %s", what, d, summary(rs))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	servers := map[string]*reloadServer{}
	start := func(name string) {
		servers[name] = serveDir(t, dir, "--instance", name, "--no-watch", "--admin", "127.0.0.1:0")
	}
	for _, name := range []string{"a", "b", "c"} {
		start(name)
	}

	// One instance runs the looping call: 20 runs, all from it.
	rs := waitRuns("20 runs", 10*time.Second, func(rs []instanceRun) bool { return len(rs) >= 20 })
	first := rs[0].I
	for _, r := range rs {
		if r.I != first {
			t.Fatalf("before any failure, runs came from %s", summary(rs))
		}
	}
	holderLog := regexp.MustCompile(`background tasks: this instance holds the lease`)
	if !holderLog.MatchString(servers[first].log()) {
		t.Errorf("the holder %s did not log that it holds the lease:\n%s", first, servers[first].log())
	}
	for name, s := range servers {
		if name != first && !strings.Contains(s.log(), "holder="+first) {
			t.Errorf("instance %s did not log that %s holds the lease:\n%s", name, first, s.log())
		}
	}

	// kill -9 the holder: another instance takes over within the lease.
	before := len(rs)
	if err := servers[first].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now().UnixMilli()
	<-servers[first].done
	rs = waitRuns("a run by another instance after kill -9", 3*instancesLease, func(rs []instanceRun) bool {
		return len(rs) > before && rs[len(rs)-1].I != first
	})
	var lastOld, firstNew instanceRun
	for _, r := range rs {
		if r.I == first {
			lastOld = r
		} else if firstNew.N == 0 {
			firstNew = r
		}
	}
	second := firstNew.I
	takeover := time.Duration(firstNew.T0-killed) * time.Millisecond
	gap := time.Duration(firstNew.T0-lastOld.T0) * time.Millisecond
	t.Logf("kill -9 of %s: %s ran the looping call %v after the kill (%v after %s's last run); lease %v, interval %v",
		first, second, takeover, gap, first, instancesLease, instancesInterval)
	// The lease expires at most instancesLease after the holder's last renewal, which came
	// before the kill; the next tick of the looping call follows within one interval. The
	// rest is leeway for a loaded machine.
	if takeover > instancesLease+instancesInterval+time.Second {
		t.Errorf("takeover %v after kill -9; want within the lease (%v) and an interval", takeover, instancesLease)
	}
	if !holderLog.MatchString(servers[second].log()) {
		t.Errorf("the new holder %s did not log that it holds the lease:\n%s", second, servers[second].log())
	}
	// /status and `luahost status` on each living instance name the new holder.
	for name, s := range servers {
		if name == first {
			continue
		}
		waitStatus(t, s, name, second)
		out, err := exec.Command(luahostBinary(t), "status", "--admin", s.admin).CombinedOutput()
		if err != nil {
			t.Fatalf("luahost status: %v\n%s", err, out)
		}
		want := "background tasks: run on " + second + ", which holds the lease"
		if name == second {
			want = "background tasks: run here: this instance holds the lease until "
		}
		if !strings.Contains(string(out), "instance: "+name+"\n") || !strings.Contains(string(out), want) {
			t.Errorf("luahost status of %s: no %q in:\n%s", name, want, out)
		}
	}

	// Restart the killed instance: it waits, and nothing runs twice.
	start(first)
	restarted := len(runs())
	rs = waitRuns("30 more runs after the restart", 10*time.Second, func(rs []instanceRun) bool { return len(rs) >= restarted+30 })
	for _, r := range rs[before:] {
		if r.I == first {
			t.Fatalf("run %d came from %s, restarted while %s holds the lease: %s", r.N, first, second, summary(rs))
		}
	}

	// A graceful stop (SIGTERM) releases the lease: a waiting instance takes over at its next
	// attempt (every lease/5), without waiting for the lease to expire.
	stopped := len(rs)
	servers[second].stop()
	stopAt := time.Now().UnixMilli()
	rs = waitRuns("a run by another instance after SIGTERM", 3*instancesLease, func(rs []instanceRun) bool {
		return len(rs) > stopped && rs[len(rs)-1].I != second
	})
	var third instanceRun
	for _, r := range rs[stopped:] {
		if r.I != second {
			third = r
			break
		}
	}
	handover := time.Duration(third.T0-stopAt) * time.Millisecond
	t.Logf("SIGTERM of %s: %s ran the looping call %v after the stop returned", second, third.I, handover)
	if handover > instancesLease {
		t.Errorf("handover after SIGTERM took %v; the released lease should be taken within lease/5 (%v) and an interval", handover, instancesLease/5)
	}
	rs = waitRuns("10 more runs", 10*time.Second, func(rs []instanceRun) bool { return len(rs) >= stopped+10 })

	// Over the whole run: the instance changed only at the two handovers, and no two runs
	// ever overlapped (each started after the previous one ended).
	var order []string
	for i, r := range rs {
		// kill -9 may land between a run's count and its record; at no other time may a
		// counted run go unrecorded.
		if i > 0 && r.N != rs[i-1].N+1 && r.N != firstNew.N {
			t.Errorf("runs %d to %d have no record (counted, never finished)", rs[i-1].N+1, r.N-1)
		}
		if len(order) == 0 || order[len(order)-1] != r.I {
			order = append(order, r.I)
		}
		if i > 0 && r.T0 < rs[i-1].T1 {
			t.Errorf("run %d on %s started at %d, before run %d on %s ended at %d", r.N, r.I, r.T0, rs[i-1].N, rs[i-1].I, rs[i-1].T1)
		}
	}
	if want := []string{first, second, third.I}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("instances in the order they ran: %v; want %v", order, want)
	}
	t.Logf("%d runs: %s", len(rs), summary(rs))
}

// waitStatus polls s's /status until it reports instance name, with holder holding the
// lease (a waiting instance learns of a new holder at its next attempt).
func waitStatus(t *testing.T, s *reloadServer, name, holder string) {
	t.Helper()
	var doc struct {
		Background struct {
			Instance   string
			RunOn      string `json:"run_background_tasks_on"`
			Running    bool
			Holder     string
			LeaseUntil *time.Time `json:"lease_until"`
		}
	}
	deadline := time.Now().Add(instancesLease)
	for {
		resp, err := http.Get(s.admin + "/status")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		b := doc.Background
		if b.Instance == name && b.RunOn == "any" && b.Holder == holder && b.Running == (name == holder) &&
			(b.LeaseUntil != nil) == (name == holder) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status of %s: background = %+v; want instance %s, run_background_tasks_on any, holder %s", name, b, name, holder)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// summary shows runs as instance×count in order: "a×20 b×31 c×10".
func summary(rs []instanceRun) string {
	var parts []string
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j].I == rs[i].I {
			j++
		}
		parts = append(parts, fmt.Sprintf("%s×%d", rs[i].I, j-i))
		i = j
	}
	return strings.Join(parts, " ")
}
