package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Hot reload end to end (issue 7): a real `luahost serve` process, files
// edited the way admins and editors edit them, and HTTP requests from the
// outside. Every wait polls against reloadDeadline; the only fixed wait is
// the --no-watch case, which must show that nothing happens.

const (
	reloadDeadline = 10 * time.Second
	// reloadQuiet is how long --no-watch must keep serving the old version
	// after an edit: several times the watcher's 250 ms debounce.
	reloadQuiet = 1500 * time.Millisecond
)

var (
	reloadBinOnce sync.Once
	reloadBinDir  string
	reloadBin     string
	reloadBinErr  error
)

// luahostBinary builds cmd/luahost once per test binary run, into a
// folder TestReloadServe removes when all its cases are done.
func luahostBinary(t *testing.T) string {
	t.Helper()
	reloadBinOnce.Do(func() {
		reloadBinDir, reloadBinErr = os.MkdirTemp("", "luahost-reload-test-")
		if reloadBinErr != nil {
			return
		}
		reloadBin = filepath.Join(reloadBinDir, "luahost")
		cmd := exec.Command("go", "build", "-o", reloadBin, "./cmd/luahost")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			reloadBinErr = fmt.Errorf("go build ./cmd/luahost: %v\n%s", err, out)
		}
	})
	if reloadBinErr != nil {
		t.Fatal(reloadBinErr)
	}
	return reloadBin
}

// reloadServer is one `luahost serve` process over a temp folder.
type reloadServer struct {
	t   *testing.T
	dir string
	cmd *exec.Cmd
	url string
	// admin is the admin listener's URL, with --admin ("" without).
	admin string
	done  chan struct{} // closed when the process has exited
	err   error         // Wait's result, valid after done

	mu     sync.Mutex
	stderr bytes.Buffer
}

type reloadLogWriter struct{ s *reloadServer }

func (w reloadLogWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}

func (s *reloadServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

var (
	reloadServingRe = regexp.MustCompile(`serving \d+ module\(s\) on (http://\S+)`)
	reloadAdminRe   = regexp.MustCompile(`luahost: admin on (http://\S+)`)
)

// startReloadServer writes files into a new temp folder and serves its
// luahost.yaml; it returns once the server printed its address.
func startReloadServer(t *testing.T, files map[string]string, flags ...string) *reloadServer {
	t.Helper()
	s := &reloadServer{t: t, dir: t.TempDir()}
	for name, src := range files {
		s.write(name, src)
	}
	return serveDir(t, s.dir, flags...)
}

// serveDir serves dir's luahost.yaml (several servers may serve one
// folder); it returns once the server printed its address.
func serveDir(t *testing.T, dir string, flags ...string) *reloadServer {
	t.Helper()
	bin := luahostBinary(t)
	s := &reloadServer{t: t, dir: dir, done: make(chan struct{})}
	args := append([]string{"serve", "-c", filepath.Join(s.dir, "luahost.yaml"), "--listen", "127.0.0.1:0"}, flags...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = s.dir
	s.cmd.Stderr = reloadLogWriter{s}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := reloadAdminRe.FindStringSubmatch(sc.Text()); m != nil {
				s.admin = m[1] // printed before the serving line, read after it
			}
			if m := reloadServingRe.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-drained
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case s.url = <-addr:
	case <-s.done:
		t.Fatalf("luahost serve exited before serving (%v):\n%s", s.err, s.log())
	case <-time.After(reloadDeadline):
		t.Fatalf("luahost serve did not print its address within %v:\n%s", reloadDeadline, s.log())
	}
	return s
}

// write saves a file in place (truncate and write), as `echo >` does.
func (s *reloadServer) write(name, src string) {
	s.t.Helper()
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// save writes a temp file beside the target and renames it over the
// target, as most editors save.
func (s *reloadServer) save(name, src string) {
	s.t.Helper()
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := f.WriteString(src); err != nil {
		s.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		s.t.Fatal(err)
	}
}

// get fetches a path and returns the status and body (status 0 and the
// error text when the request failed).
func (s *reloadServer) get(path string) (int, string) {
	resp, err := http.Get(s.url + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFor polls path until it answers 200 with a body containing want,
// and returns how long that took.
func (s *reloadServer) waitFor(path, want string) time.Duration {
	s.t.Helper()
	start := time.Now()
	var code int
	var body string
	for time.Since(start) < reloadDeadline {
		if code, body = s.get(path); code == 200 && strings.Contains(body, want) {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("GET %s: no 200 with %q within %v; last answer %d %s\nserver log:\n%s",
		path, want, reloadDeadline, code, body, s.log())
	return 0
}

// waitForStatus polls path until it answers with the status code.
func (s *reloadServer) waitForStatus(path string, want int) {
	s.t.Helper()
	start := time.Now()
	var code int
	var body string
	for time.Since(start) < reloadDeadline {
		if code, body = s.get(path); code == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("GET %s: no %d within %v; last answer %d %s\nserver log:\n%s", path, want, reloadDeadline, code, body, s.log())
}

// waitForLog polls the server's log until it holds n lines matching re,
// and returns the log.
func (s *reloadServer) waitForLog(re *regexp.Regexp, n int) string {
	s.t.Helper()
	start := time.Now()
	for {
		log := s.log()
		if len(re.FindAllString(log, -1)) >= n {
			return log
		}
		if time.Since(start) > reloadDeadline {
			s.t.Fatalf("the server log has fewer than %d lines matching %s after %v:\n%s", n, re, reloadDeadline, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and checks for a clean exit.
func (s *reloadServer) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(reloadDeadline):
		s.t.Fatalf("luahost serve did not exit within %v of SIGTERM:\n%s", reloadDeadline, s.log())
	}
	if s.err != nil {
		s.t.Errorf("luahost serve exited with %v after SIGTERM:\n%s", s.err, s.log())
	}
	if !strings.Contains(s.log(), `msg="shut down"`) {
		s.t.Errorf("no \"shut down\" in the server log:\n%s", s.log())
	}
}

// awaitWatcher waits until the file watcher reacts to events: `serve`
// prints its address before the watcher has armed, so an edit made in the
// first instants could be missed. Rewriting the config with the same
// content reloads nothing but is logged as a file change.
func (s *reloadServer) awaitWatcher() {
	s.t.Helper()
	cfg, err := os.ReadFile(filepath.Join(s.dir, "luahost.yaml"))
	if err != nil {
		s.t.Fatal(err)
	}
	re := regexp.MustCompile(`msg="files changed; reloading"`)
	start := time.Now()
	for n := len(re.FindAllString(s.log(), -1)); ; {
		s.write("luahost.yaml", string(cfg))
		poll := time.Now()
		for time.Since(poll) < 600*time.Millisecond {
			if len(re.FindAllString(s.log(), -1)) > n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		if time.Since(start) > reloadDeadline {
			s.t.Fatalf("the file watcher never reacted within %v:\n%s", reloadDeadline, s.log())
		}
	}
}

const reloadConfig = `server_name: example.org
storage: { backend: memory }
modules:
  - module: web.lua
    config: { greeting: hello }
`

// reloadWeb is a module answering GET /_synapse/client/v with its version,
// its config's greeting and its helper's tag.
func reloadWeb(version int) string {
	return fmt.Sprintf(`local helper = require("lib.helper")
local M = {}
function M.new(config, api)
  api.register_web_resource("/_synapse/client/v", function(request)
    return { json = { version = %d, greeting = config.greeting, helper = helper.tag } }
  end)
end
return M
`, version)
}

func reloadHelper(tag string) string {
	return fmt.Sprintf("return { tag = %q }\n", tag)
}

func reloadFiles() map[string]string {
	return map[string]string{
		"luahost.yaml":   reloadConfig,
		"web.lua":        reloadWeb(1),
		"lib/helper.lua": reloadHelper("h1"),
	}
}

func TestReloadServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds luahost and runs `luahost serve` processes (about 15 s); skipped with -short")
	}
	luahostBinary(t)

	t.Run("save", func(t *testing.T) {
		s := startReloadServer(t, reloadFiles())
		s.waitFor("/_synapse/client/v", `"version":1`)
		s.awaitWatcher()
		s.save("web.lua", reloadWeb(2))
		t.Logf("rename-on-save served after %v", s.waitFor("/_synapse/client/v", `"version":2`))
		s.write("web.lua", reloadWeb(3))
		t.Logf("in-place write served after %v", s.waitFor("/_synapse/client/v", `"version":3`))
		// Renaming over the file replaced its inode: the watcher still sees it.
		s.save("web.lua", reloadWeb(4))
		s.waitFor("/_synapse/client/v", `"version":4`)
		s.stop()
	})

	t.Run("broken", func(t *testing.T) {
		s := startReloadServer(t, reloadFiles())
		s.awaitWatcher()
		failed := regexp.MustCompile(`level=ERROR msg="reload failed; the previous version keeps serving" module=web .*web\.lua:4: syntax error`)
		s.save("web.lua", strings.Replace(reloadWeb(2), "function M.new(config, api)", "function M.new(config, api)\n  if then", 1))
		s.waitForLog(failed, 1)
		if code, body := s.get("/_synapse/client/v"); code != 200 || !strings.Contains(body, `"version":1`) {
			t.Errorf("after a broken save the old version should serve: %d %s", code, body)
		}
		// A constructor error points at its line too.
		s.save("web.lua", strings.Replace(reloadWeb(2), "function M.new(config, api)", "function M.new(config, api)\n  local x = nil\n  x.boom()", 1))
		s.waitForLog(regexp.MustCompile(`msg="reload failed; the previous version keeps serving" module=web .*web\.lua:5\b`), 1)
		if code, body := s.get("/_synapse/client/v"); code != 200 || !strings.Contains(body, `"version":1`) {
			t.Errorf("after a failing constructor the old version should serve: %d %s", code, body)
		}
		s.save("web.lua", reloadWeb(3))
		s.waitFor("/_synapse/client/v", `"version":3`)
		s.stop()
	})

	t.Run("require", func(t *testing.T) {
		s := startReloadServer(t, reloadFiles())
		s.waitFor("/_synapse/client/v", `"helper":"h1"`)
		s.awaitWatcher()
		s.save("lib/helper.lua", reloadHelper("h2"))
		s.waitFor("/_synapse/client/v", `"helper":"h2"`)
		s.write("lib/helper.lua", reloadHelper("h3"))
		s.waitFor("/_synapse/client/v", `"helper":"h3"`)
		// A broken helper keeps the module serving; fixing it reloads.
		s.save("lib/helper.lua", "return {\n")
		s.waitForLog(regexp.MustCompile(`msg="reload failed; the previous version keeps serving" module=web .*lib/helper\.lua`), 1)
		s.waitFor("/_synapse/client/v", `"helper":"h3"`)
		s.save("lib/helper.lua", reloadHelper("h4"))
		s.waitFor("/_synapse/client/v", `"helper":"h4"`)
		s.stop()
	})

	t.Run("config", func(t *testing.T) {
		files := reloadFiles()
		files["two.lua"] = `local M = {}
function M.new(config, api)
  api.register_web_resource("/_synapse/client/two", function(request)
    return { json = { two = config.n } }
  end)
end
return M
`
		s := startReloadServer(t, files)
		s.waitFor("/_synapse/client/v", `"greeting":"hello"`)
		s.awaitWatcher()
		s.save("luahost.yaml", strings.Replace(reloadConfig, "greeting: hello", "greeting: bonjour", 1))
		s.waitFor("/_synapse/client/v", `"greeting":"bonjour"`)

		reloadedWeb := regexp.MustCompile(`msg="module reloaded" module=web `)
		webReloads := len(reloadedWeb.FindAllString(s.log(), -1))
		withTwo := strings.Replace(reloadConfig, "greeting: hello", "greeting: bonjour", 1) +
			"  - module: two.lua\n    config: { n: 2 }\n"
		s.save("luahost.yaml", withTwo)
		s.waitFor("/_synapse/client/two", `"two":2`)
		if n := len(reloadedWeb.FindAllString(s.log(), -1)); n != webReloads {
			t.Errorf("adding a module reloaded the unchanged module web:\n%s", s.log())
		}
		s.write("luahost.yaml", strings.Replace(reloadConfig, "greeting: hello", "greeting: bonjour", 1))
		s.waitForStatus("/_synapse/client/two", 404)
		s.waitForLog(regexp.MustCompile(`msg="module removed" module=two`), 1)
		s.waitFor("/_synapse/client/v", `"greeting":"bonjour"`)

		// A config with errors changes nothing.
		s.save("luahost.yaml", reloadConfig+"  - modul: typo.lua\n")
		s.waitForLog(regexp.MustCompile(`msg="reload: config has errors; keeping the running modules"`), 1)
		s.waitFor("/_synapse/client/v", `"greeting":"bonjour"`)
		s.stop()
	})

	t.Run("sighup", func(t *testing.T) {
		s := startReloadServer(t, reloadFiles(), "--no-watch")
		s.waitFor("/_synapse/client/v", `"version":1`)
		s.save("web.lua", reloadWeb(2))
		for start := time.Now(); time.Since(start) < reloadQuiet; time.Sleep(50 * time.Millisecond) {
			if code, body := s.get("/_synapse/client/v"); code != 200 || !strings.Contains(body, `"version":1`) {
				t.Fatalf("with --no-watch an edit must wait for SIGHUP, got %d %s", code, body)
			}
		}
		if strings.Contains(s.log(), "files changed") {
			t.Errorf("--no-watch still watches files:\n%s", s.log())
		}
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		s.waitFor("/_synapse/client/v", `"version":2`)
		s.waitForLog(regexp.MustCompile(`msg="SIGHUP: reloading"`), 1)
		// SIGHUP rereads the config too.
		s.write("luahost.yaml", strings.Replace(reloadConfig, "greeting: hello", "greeting: hup", 1))
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		s.waitFor("/_synapse/client/v", `"greeting":"hup"`)
		s.stop()
	})

	t.Run("load", func(t *testing.T) {
		// The handler parks on a host call so that requests are in flight
		// on the old version when the swap happens.
		web := func(version int) string {
			return strings.Replace(reloadWeb(version), "return { json", "api.sleep(0.001)\n    return { json", 1)
		}
		files := reloadFiles()
		files["web.lua"] = web(0)
		s := startReloadServer(t, files)
		s.waitFor("/_synapse/client/v", `"version":0`)
		s.awaitWatcher()

		var stop atomic.Bool
		var requests, failures atomic.Int64
		var firstFailure atomic.Value
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			// Half reuse connections, half open one per request.
			client := &http.Client{Timeout: reloadDeadline, Transport: &http.Transport{DisableKeepAlives: g%2 == 1}}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer client.CloseIdleConnections()
				for !stop.Load() {
					requests.Add(1)
					resp, err := client.Get(s.url + "/_synapse/client/v")
					if err == nil {
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						var v struct{ Version *int }
						if resp.StatusCode != 200 {
							err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
						} else if json.Unmarshal(body, &v) != nil || v.Version == nil {
							err = fmt.Errorf("bad body: %s", body)
						}
					}
					if err != nil {
						failures.Add(1)
						firstFailure.CompareAndSwap(nil, err.Error())
					}
				}
			}()
		}
		var worst time.Duration
		for i := 1; i <= 10; i++ {
			s.save("web.lua", web(i))
			if d := s.waitFor("/_synapse/client/v", fmt.Sprintf(`"version":%d`, i)); d > worst {
				worst = d
			}
		}
		stop.Store(true)
		wg.Wait()
		t.Logf("%d requests during 10 reloads; slowest save-to-served %v", requests.Load(), worst)
		if n := failures.Load(); n > 0 {
			t.Errorf("%d of %d requests failed during the reloads; first: %v", n, requests.Load(), firstFailure.Load())
		}
		if requests.Load() < 100 {
			t.Errorf("only %d requests were sent; the load did not overlap the reloads", requests.Load())
		}
		s.stop()
	})
}
