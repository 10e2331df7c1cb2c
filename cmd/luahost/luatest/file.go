package luatest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/stdlib"
)

// fileRun is one test file: its own sandboxed Lua state (where the test
// API lives), the tests it declared, and the world of the running test.
// Everything here runs on one goroutine.
type fileRun struct {
	path string // as given, for messages
	dir  string // the file's folder: t.load paths are relative to it
	opts Options
	L    *lua.LState

	tests      []*testCase
	groups     []string // t.describe names, outermost first
	collecting bool     // the file's top level is running
	load       *loadSpec
	cur        *testEnv // the running test's world
	output     strings.Builder
}

type testCase struct {
	name string
	fn   *lua.LFunction
	load *loadSpec // the file's t.load when the test was declared
}

// skipped is raised by t.skip.
type skipped struct{ reason string }

// runFile runs one test file and returns a result per test (or one for
// the file when it cannot run at all).
func runFile(path string, opts Options) []Result {
	began := time.Now()
	fail := func(msg string) []Result {
		return []Result{{File: path, Name: "(file)", Status: "fail", Error: msg, Line: lineOf(path, msg),
			Elapsed: time.Since(began).Seconds()}}
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return fail(err.Error())
	}
	proto, err := sandbox.Compile(src, path)
	if err != nil {
		return fail(err.Error())
	}
	fr := &fileRun{path: path, dir: filepath.Dir(path), opts: opts}
	fr.L = sandbox.NewState()
	defer fr.L.Close()
	ld := &sandbox.Loader{FS: os.DirFS(fr.dir), Dir: ".",
		Libraries: map[string]lua.LValue{"luahost.test": fr.api()},
		Env:       &stdlib.Env{Module: "test", Logger: slog.New(slog.NewTextHandler(&fr.output, nil)), Now: fr.now}}
	ld.Install(fr.L)
	fr.L.G.Global.RawSetString("print", fr.L.NewFunction(fr.print))

	fr.collecting = true
	msg, _ := fr.protect(fr.L.NewFunctionFromProto(proto))
	fr.collecting = false
	if msg != "" {
		return fail("error in the file's top level: " + msg)
	}
	if len(fr.tests) == 0 {
		return fail("no tests: declare them with t.test(name, function() ... end)")
	}
	var out []Result
	for _, tc := range fr.tests {
		if opts.Run != nil && !opts.Run.MatchString(tc.name) {
			continue
		}
		out = append(out, fr.runTest(tc))
	}
	return out
}

// runTest runs one test in a world of its own.
func (fr *fileRun) runTest(tc *testCase) Result {
	began := time.Now()
	fr.output.Reset()
	fr.cur = newTestEnv(fr, tc.load)
	msg, skip := fr.protect(tc.fn)
	if err := fr.cur.close(); err != nil && msg == "" && skip == nil {
		msg = "closing the modules: " + err.Error()
	}
	logs := fr.cur.logText()
	fr.cur = nil
	r := Result{File: fr.path, Name: tc.name, Status: "pass", Elapsed: time.Since(began).Seconds()}
	out := fr.output.String() + logs
	switch {
	case skip != nil:
		r.Status, r.Error = "skip", skip.reason
	case msg != "":
		r.Status, r.Error, r.Line = "fail", msg, lineOf(fr.path, msg)
		r.Output = out
	default:
		if fr.opts.Verbose {
			r.Output = out
		}
	}
	return r
}

// protect calls fn under the test deadline and returns the error it
// raised (with the test file's part of the traceback), or the skip.
func (fr *fileRun) protect(fn *lua.LFunction) (msg string, skip *skipped) {
	L := fr.L
	ctx, cancel := context.WithTimeout(context.Background(), fr.opts.Timeout)
	defer cancel()
	L.SetContext(ctx)
	defer L.RemoveContext()
	var trace, top string
	handler := L.NewFunction(func(L *lua.LState) int {
		trace, top = fr.traceback(L)
		return 1 // the error value, as given
	})
	L.Push(fn)
	err := L.PCall(0, 0, handler)
	if err == nil {
		return "", nil
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		if ud, ok := ae.Object.(*lua.LUserData); ok {
			if s, ok := ud.Value.(*skipped); ok {
				return "", s
			}
		}
		msg = errorText(L, ae.Object)
	} else {
		msg = err.Error()
	}
	if ctx.Err() != nil && strings.Contains(msg, context.DeadlineExceeded.Error()) {
		msg = fmt.Sprintf("the test ran longer than %s (a loop that never ends?)", fr.opts.Timeout)
	}
	if top != "" && !strings.Contains(msg, ".lua:") {
		msg = top + " " + msg // a message without a position: where it stood
	}
	if trace != "" {
		msg += "\n" + trace
	}
	return msg, nil
}

// errorText is an error value as text.
func errorText(L *lua.LState, v lua.LValue) string {
	if s, ok := v.(lua.LString); ok {
		return string(s)
	}
	if v == lua.LNil {
		return "an error raised without a message (error(nil))"
	}
	if L.GetMetaField(v, "__tostring") != lua.LNil {
		return L.ToStringMeta(v).String()
	}
	if t, ok := v.(*lua.LTable); ok {
		if m, ok := t.RawGetString("message").(lua.LString); ok {
			return string(m)
		}
	}
	return "error object: " + render(L, v)
}

// traceback lists the frames of Lua files (the test file and what it
// required) that were active when the error was raised, and the
// innermost one's position ("x_test.lua:12:").
func (fr *fileRun) traceback(L *lua.LState) (trace, top string) {
	var lines []string
	for level := 1; level < 40; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			break
		}
		if _, err := L.GetInfo("Sln", dbg, lua.LNil); err != nil || dbg.CurrentLine <= 0 || strings.HasPrefix(dbg.Source, "<") {
			continue
		}
		name := dbg.Name
		if name == "" || name == "main chunk" {
			name = "the test function"
		}
		if top == "" {
			top = fmt.Sprintf("%s:%d:", dbg.Source, dbg.CurrentLine)
		}
		lines = append(lines, fmt.Sprintf("  %s:%d: in %s", dbg.Source, dbg.CurrentLine, name))
	}
	if len(lines) <= 1 {
		return "", top
	}
	return "traceback:\n" + strings.Join(lines, "\n"), top
}

// lineOf finds "file:N:" in msg.
func lineOf(file, msg string) int {
	m := regexp.MustCompile(regexp.QuoteMeta(file) + `:(\d+):`).FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func (fr *fileRun) print(L *lua.LState) int {
	parts := make([]string, 0, L.GetTop())
	for i := 1; i <= L.GetTop(); i++ {
		parts = append(parts, L.ToStringMeta(L.Get(i)).String())
	}
	fr.output.WriteString(strings.Join(parts, "\t") + "\n")
	return 0
}

// now is the running test's fake time (the real time between tests).
func (fr *fileRun) now() time.Time {
	if fr.cur != nil {
		return fr.cur.clock.Now()
	}
	return time.Now()
}

// where is the test file's position of the running call ("x_test.lua:12:").
func (fr *fileRun) where() string { return sandbox.ScriptWhere(fr.L) }

// raise fails the running test at the calling line.
func (fr *fileRun) raise(format string, args ...any) {
	sandbox.RaiseAtScript(fr.L, format, args...)
}

// env is the running test's world, or raises when there is none.
func (fr *fileRun) env(fn string) *testEnv {
	if fr.cur == nil {
		fr.raise("t.%s: only inside a test (t.test(name, function() ... end))", fn)
	}
	return fr.cur
}
