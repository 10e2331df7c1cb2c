package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The scripts under tests/testdata/cli drive the real binary: testscript
// installs this test binary as `luahost` on PATH and TestMain dispatches
// to run when it is invoked under that name.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"luahost": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// gorace keeps the caller's race detector options but drops the detector's
// one-second sleep at exit, which every luahost command would pay.
var gorace = strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")

func TestScripts(t *testing.T) {
	examples, err := filepath.Abs("../../scripts/examples")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "../../tests/testdata/cli",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("EXAMPLES", examples)
			// Under -race every exiting luahost would otherwise sleep 1s.
			env.Setenv("GORACE", gorace)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"serve-bg":   cmdServeBg,
			"stop-serve": cmdStopServe,
			"http":       cmdHTTP,
			"json-var":   cmdJSONVar,

			"shared-secret-mac": cmdSharedSecretMAC,
			"media-path":        cmdMediaPath,
			"hmac-sha512":       cmdHMACSHA512,
			"wait-log":          cmdWaitLog,
			"jsonl":             cmdJSONL,
			"http-until":        cmdHTTPUntil,
		},
	})
}

// How long the helpers wait for the server before failing the script.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 15 * time.Second
	httpTimeout  = 10 * time.Second
)

// server is a `luahost serve` started by serve-bg.
type server struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done
	mu     sync.Mutex
	stdout bytes.Buffer
	// stderr is a file the server writes directly, so that everything it
	// logged before printing a stdout line is there once we read that line.
	stderr string
}

func (s *server) output() (string, string) {
	errOut, _ := os.ReadFile(s.stderr)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stdout.String(), string(errOut)
}

var (
	serversMu sync.Mutex
	servers   = map[*testscript.TestScript]*server{}
)

func currentServer(ts *testscript.TestScript) *server {
	serversMu.Lock()
	defer serversMu.Unlock()
	return servers[ts]
}

func setServer(ts *testscript.TestScript, s *server) {
	serversMu.Lock()
	defer serversMu.Unlock()
	if s == nil {
		delete(servers, ts)
	} else {
		servers[ts] = s
	}
}

var (
	servingRe  = regexp.MustCompile(`^luahost: serving \d+ module\(s\) on http://(\S+)$`)
	adminRe    = regexp.MustCompile(`^luahost: admin on http://(\S+)$`)
	devTokenRe = regexp.MustCompile(`^dev (?:user|admin) (\S+): access token (\S+)$`)
)

// serve-bg [NAME=VALUE...] CONFIG [flags...] starts `luahost serve -c
// CONFIG --listen 127.0.0.1:0 [flags...]` in the background, with the
// NAME=VALUE pairs added to its environment, and waits until it serves;
// ADDR is set to its address, ADMIN to its admin listener's (if any),
// TOKEN to the first dev user's token and TOKEN_<LOCALPART> (upper case)
// to each dev user's; what it printed so far is the command's output.
// With `!`, the server must instead exit with an error before serving;
// its output is then available to stdout/stderr.
func cmdServeBg(ts *testscript.TestScript, neg bool, args []string) {
	var env []string
	for len(args) > 0 && strings.Contains(args[0], "=") {
		env = append(env, args[0])
		args = args[1:]
	}
	if len(args) < 1 {
		ts.Fatalf("usage: serve-bg [NAME=VALUE...] CONFIG [flags...]")
	}
	if currentServer(ts) != nil {
		ts.Fatalf("serve-bg: a server is already running; stop-serve first")
	}
	bin, err := exec.LookPath("luahost")
	ts.Check(err)
	cmdArgs := append([]string{"serve", "-c", ts.MkAbs(args[0]), "--listen", "127.0.0.1:0"}, args[1:]...)
	cmd := exec.Command(bin, cmdArgs...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = append(append(os.Environ(), "HOME="+ts.Getenv("HOME"), "TMPDIR="+ts.Getenv("TMPDIR"), "GORACE="+gorace), env...)
	stderr, err := os.CreateTemp(ts.Getenv("WORK"), "serve-*.stderr")
	ts.Check(err)
	defer stderr.Close() // the child has its own copy
	s := &server{cmd: cmd, done: make(chan struct{}), stderr: stderr.Name()}
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	ts.Check(err)
	ts.Check(cmd.Start())

	// Read stdout line by line: keep every byte for stop-serve, and report
	// the dev tokens and the serving line as they appear.
	type event struct{ addr, admin, user, token string }
	// Before serving, at most one event per --dev-user/--dev-admin flag.
	events := make(chan event, len(args)+1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		defer close(events)
		r := bufio.NewReader(pipe)
		served := false // after the serving line nothing is sent: no one reads events
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				s.mu.Lock()
				s.stdout.WriteString(line)
				s.mu.Unlock()
				l := strings.TrimRight(line, "\r\n")
				if served {
					// keep draining
				} else if m := servingRe.FindStringSubmatch(l); m != nil {
					served = true
					events <- event{addr: m[1]}
				} else if m := adminRe.FindStringSubmatch(l); m != nil {
					events <- event{admin: m[1]}
				} else if m := devTokenRe.FindStringSubmatch(l); m != nil {
					events <- event{user: m[1], token: m[2]}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		<-copied // Wait must not run before the pipe is drained
		s.err = cmd.Wait()
		close(s.done)
	}()
	setServer(ts, s)
	ts.Defer(func() {
		if currentServer(ts) != s {
			return
		}
		setServer(ts, nil)
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			cmd.Process.Kill()
			<-s.done
		}
	})

	token := ""
	deadline := time.After(startTimeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				// stdout closed: the server exited without serving.
				<-s.done
				setServer(ts, nil)
				out, errOut := s.output()
				if neg {
					if s.err == nil {
						ts.Fatalf("serve-bg: luahost serve exited 0 without serving")
					}
					fmt.Fprint(ts.Stdout(), out)
					fmt.Fprint(ts.Stderr(), errOut)
					return
				}
				ts.Fatalf("serve-bg: luahost serve exited before serving (%v)\nstdout:\n%s\nstderr:\n%s", s.err, out, errOut)
			}
			if ev.admin != "" {
				ts.Setenv("ADMIN", ev.admin)
				continue
			}
			if ev.token != "" {
				// TOKEN_ALICE for @alice:server (TOKEN_GUEST_KIOSK for
				// @guest-kiosk), and TOKEN for the first.
				localpart, _, _ := strings.Cut(strings.TrimPrefix(ev.user, "@"), ":")
				name := strings.Map(func(r rune) rune {
					switch {
					case r >= 'a' && r <= 'z':
						return r - 'a' + 'A'
					case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
						return r
					}
					return '_'
				}, localpart)
				ts.Setenv("TOKEN_"+name, ev.token)
				if token == "" {
					token = ev.token
					ts.Setenv("TOKEN", token)
				}
				continue
			}
			if neg {
				ts.Fatalf("serve-bg: luahost serve started serving on %s, expected it to fail", ev.addr)
			}
			ts.Setenv("ADDR", ev.addr)
			out, errOut := s.output()
			fmt.Fprint(ts.Stdout(), out)
			fmt.Fprint(ts.Stderr(), errOut)
			return
		case <-deadline:
			out, errOut := s.output()
			ts.Fatalf("serve-bg: luahost serve did not start within %v\nstdout:\n%s\nstderr:\n%s", startTimeout, out, errOut)
		}
	}
}

// stop-serve sends SIGINT to the server started by serve-bg, waits for it
// to exit and makes its whole stdout and stderr the command's output.
// With `!`, the server must exit with an error.
func cmdStopServe(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 {
		ts.Fatalf("usage: stop-serve")
	}
	s := currentServer(ts)
	if s == nil {
		ts.Fatalf("stop-serve: no server running (serve-bg first)")
	}
	setServer(ts, nil)
	ts.Check(s.cmd.Process.Signal(os.Interrupt))
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.done
		ts.Fatalf("stop-serve: luahost serve did not exit within %v of SIGINT", stopTimeout)
	}
	out, errOut := s.output()
	fmt.Fprint(ts.Stdout(), out)
	fmt.Fprint(ts.Stderr(), errOut)
	switch {
	case neg && s.err == nil:
		ts.Fatalf("stop-serve: luahost serve exited 0, expected an error")
	case !neg && s.err != nil:
		ts.Fatalf("stop-serve: luahost serve: %v", s.err)
	}
}

// http [-scrub] [-H 'Name: value']... [-wait STATUS] METHOD PATH [BODY]
// sends a request to $ADDR (or to PATH when it is a whole http:// URL)
// and prints the status, the Allow, Content-Type, Retry-After and CORS
// headers and the body. With -scrub, a JSON body is printed with sorted
// keys and what changes from run to run made constant: times
// (origin_server_ts, age, last_active_ago) become 0 and event IDs
// "<event>", so that the answer compares exactly (use cmpenv for room
// IDs). With -wait, it repeats the request until the status is STATUS (a
// reload takes a moment after a file is saved).
func cmdHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("http does not support '!'; check the status in stdout")
	}
	header := http.Header{}
	scrub := false
	wait := 0
	for len(args) >= 1 && (args[0] == "-H" || args[0] == "-scrub" || args[0] == "-wait") {
		if args[0] == "-scrub" {
			scrub = true
			args = args[1:]
			continue
		}
		if len(args) < 2 {
			ts.Fatalf("http: %s needs a value", args[0])
		}
		if args[0] == "-wait" {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				ts.Fatalf("http: -wait %q is not a status", args[1])
			}
			wait = n
			args = args[2:]
			continue
		}
		name, value, ok := strings.Cut(args[1], ":")
		if !ok {
			ts.Fatalf("http: -H %q is not 'Name: value'", args[1])
		}
		header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		args = args[2:]
	}
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: http [-scrub] [-H 'Name: value']... [-wait STATUS] METHOD PATH [BODY]")
	}
	url := args[1]
	if !strings.HasPrefix(url, "http://") {
		addr := ts.Getenv("ADDR")
		if addr == "" {
			ts.Fatalf("http: $ADDR is not set (serve-bg first)")
		}
		url = "http://" + addr + url
	}
	deadline := time.Now().Add(reloadWait)
	for {
		status, out := doHTTP(ts, header, scrub, args[0], url, args[2:])
		if wait == 0 || status == wait {
			ts.Stdout().Write(out)
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("http: %s %s still answers %d after %v, want %d", args[0], url, status, reloadWait, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reloadWait is how long http -wait keeps asking.
const reloadWait = 15 * time.Second

// doHTTP sends one request and returns its status and what http prints.
func doHTTP(ts *testscript.TestScript, header http.Header, scrub bool, method, url string, bodyArg []string) (int, []byte) {
	var body io.Reader
	if len(bodyArg) == 1 {
		body = strings.NewReader(bodyArg[0])
	}
	req, err := http.NewRequest(method, url, body)
	ts.Check(err)
	for k, v := range header {
		req.Header[k] = v
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	client := &http.Client{
		// A fresh connection per request: no idle connection outlives the
		// command to delay the server's graceful shutdown.
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   httpTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		ts.Fatalf("http: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		ts.Fatalf("http: reading the body: %v", err)
	}
	var w bytes.Buffer
	fmt.Fprintf(&w, "%d\n", resp.StatusCode)
	for _, name := range []string{"Allow", "Content-Type", "Retry-After", "Access-Control-Allow-Origin",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
		for _, v := range resp.Header.Values(name) {
			fmt.Fprintf(&w, "%s: %s\n", name, v)
		}
	}
	if scrub && len(b) > 0 {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			ts.Fatalf("http -scrub: the body is not JSON: %v\n%s", err, b)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		ts.Check(enc.Encode(scrubJSON("", v)))
		b = bytes.TrimRight(buf.Bytes(), "\n")
	}
	w.Write(b)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		fmt.Fprintln(&w)
	}
	return resp.StatusCode, w.Bytes()
}

// jsonl FILE checks that every line of FILE is a JSON object (a log
// written with --log-format json).
func cmdJSONL(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: jsonl FILE")
	}
	text := ts.ReadFile(args[0])
	lines := 0
	var bad string
	for i, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			bad = fmt.Sprintf("line %d is not a JSON object: %v\n%s", i+1, err, line)
			break
		}
		lines++
	}
	switch {
	case neg && bad == "":
		ts.Fatalf("jsonl: every line of %s is JSON", args[0])
	case !neg && bad != "":
		ts.Fatalf("jsonl: %s", bad)
	case !neg && lines == 0:
		ts.Fatalf("jsonl: %s is empty", args[0])
	}
}

// scrubJSON makes the run-dependent values of a JSON answer constant
// (see cmdHTTP).
func scrubJSON(key string, v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = scrubJSON(k, x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = scrubJSON(key, x)
		}
		return t
	case float64:
		switch key {
		case "origin_server_ts", "age", "last_active_ago":
			return 0
		}
	case string:
		switch key {
		case "event_id", "replaces_state", "redacts":
			if strings.HasPrefix(t, "$") {
				return "<event>"
			}
		}
	}
	return v
}

// json-var NAME KEY... sets NAME to the value at KEY (nested keys in turn)
// of the JSON body the last http command printed.
func cmdJSONVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: json-var NAME KEY...")
	}
	out := ts.ReadFile("stdout")
	i := strings.Index(out, "{")
	if i < 0 {
		ts.Fatalf("json-var: the last output has no JSON object:\n%s", out)
	}
	var v any
	if err := json.Unmarshal([]byte(out[i:]), &v); err != nil {
		ts.Fatalf("json-var: %v\n%s", err, out)
	}
	for _, k := range args[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			ts.Fatalf("json-var: no %q in %s", k, out)
		}
		v = m[k]
	}
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	ts.Setenv(args[0], s)
}

// shared-secret-mac SECRET NONCE USER PASSWORD admin|notadmin sets MAC to
// the mac of Synapse's shared-secret registration.
func cmdSharedSecretMAC(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 5 {
		ts.Fatalf("usage: shared-secret-mac SECRET NONCE USER PASSWORD admin|notadmin")
	}
	mac := hmac.New(sha1.New, []byte(args[0]))
	mac.Write([]byte(args[1] + "\x00" + args[2] + "\x00" + args[3] + "\x00" + args[4]))
	ts.Setenv("MAC", hex.EncodeToString(mac.Sum(nil)))
}

// media-path NAME mxc://server/id sets NAME to "server/id", the path of
// the media under /download/.
func cmdMediaPath(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || !strings.HasPrefix(args[1], "mxc://") {
		ts.Fatalf("usage: media-path NAME mxc://SERVER/ID")
	}
	ts.Setenv(args[0], strings.TrimPrefix(args[1], "mxc://"))
}

// hmac-sha512 NAME KEY DATA sets NAME to hex(HMAC-SHA512(KEY, DATA)).
func cmdHMACSHA512(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: hmac-sha512 NAME KEY DATA")
	}
	mac := hmac.New(sha512.New, []byte(args[1]))
	mac.Write([]byte(args[2]))
	ts.Setenv(args[0], hex.EncodeToString(mac.Sum(nil)))
}

// wait-log REGEXP waits (up to startTimeout) until the running server's
// log matches REGEXP: for a reload after a file change, say.
func cmdWaitLog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: wait-log REGEXP")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	s := currentServer(ts)
	if s == nil {
		ts.Fatalf("wait-log: no server running (serve-bg first)")
	}
	deadline := time.Now().Add(startTimeout)
	for {
		_, errOut := s.output()
		if re.MatchString(errOut) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("wait-log: no match for %q in the server's log within %v:\n%s", args[0], startTimeout, errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
