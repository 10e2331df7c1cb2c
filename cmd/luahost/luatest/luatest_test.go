package luatest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"go.uber.org/goleak"

	"github.com/luahost/luahost/internal/sandbox"
)

func TestMain(m *testing.M) {
	// Every test's engine is closed: no goroutine may outlive a run.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// testdata/api_test.lua checks the test API from Lua: every test in it
// passes (one skips on purpose).
func TestAPI(t *testing.T) {
	var out bytes.Buffer
	sum := Run([]string{"testdata/api_test.lua"}, Options{Stdout: &out, Verbose: true})
	if sum.Failed > 0 || sum.Passed < 20 || sum.Skipped != 1 {
		t.Fatalf("%+v\n%s", sum, out.String())
	}
	for _, want := range []string{"--- SKIP: testdata/api_test.lua: assertions / skip stops a test", "    not needed here",
		"--- PASS: testdata/api_test.lua: print goes to the test's output", "    visible with -v", "PASS: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// A failing test says what failed and at which line of the test file;
// a broken test never stops the others.
func TestFailuresPoint(t *testing.T) {
	file := filepath.Join("testdata", "failing", "failing_test.lua")
	var out bytes.Buffer
	sum := Run([]string{file}, Options{Stdout: &out, JSON: true, Timeout: 300 * time.Millisecond})
	want := map[string]struct {
		line int
		msg  string
	}{
		"equal":                       {7, "expiry: t.equal: got true, want false"},
		"same":                        {11, "t.same: values differ:\n  .extra: missing, want true\n  .list[2]: got 2, want 3\n  .name: got \"x\", want nothing there"},
		"lua error":                   {16, "attempt to index a non-table object(nil) with key 'answer'"},
		"module error":                {20, `module "mod" (mod.lua:10): is_user_expired: kaboom`},
		"unregistered callback":       {24, "no loaded module registered spam_checker.check_event_for_spam (registered: mod: account_validity.is_user_expired)"},
		"endless loop":                {28, "the test ran longer than 300ms (a loop that never ends?)"},
		"outside the sandbox":         {32, "io is not available in the luahost sandbox"},
		"bad seed":                    {36, `t.seed: fixture: json: unknown field "admn"`},
		"raises without an error":     {40, `t.raises: the function returned normally; want an error containing "something"`},
		"a module that does not load": {45, "the modules did not load: module \"mod\": config: answer must be 42 (raised at mod.lua:4)"},
		"misspelt request key":        {49, `t.request: unknown key "pth" (did you mean path?)`},
		"a table raised":              {53, "error object: {code = 42}"},
		"nil raised":                  {57, "an error raised without a message (error(nil))"},
		"a test inside a test":        {61, "t.test: declare tests at the file's top level"},
		"a runaway timer":             {67, "t.clock.advance: more than 100000 timer runs in one advance"},
		"a module that loops":         {72, `module "looper" (looper.lua:6): is_user_expired: timed out after 100ms`},
	}
	got := map[string]Result{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("--json printed a line that is not a JSON object: %q", line)
		}
		got[r.Name] = r
	}
	if sum.Failed != len(want) || sum.Passed != 0 {
		t.Errorf("summary %+v, want %d failures", sum, len(want))
	}
	for name, w := range want {
		r, ok := got[name]
		if !ok {
			t.Errorf("no result for %q", name)
			continue
		}
		if r.Status != "fail" || r.Line != w.line || !strings.Contains(r.Error, w.msg) {
			t.Errorf("%s: status %s, line %d, error:\n%s\nwant line %d and an error containing:\n%s", name, r.Status, r.Line, r.Error, w.line, w.msg)
		}
	}
}

// A test file that cannot run at all is one failure naming its line.
func TestBrokenFiles(t *testing.T) {
	cases := []struct{ file, want string }{
		{"top_error_test.lua", `top_error_test.lua:4: attempt to index a non-table object(nil) with key 'y'`},
		{"syntax_test.lua", `syntax_test.lua:3: syntax error near 'then'`},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		sum := Run([]string{filepath.Join("testdata", "failing", tc.file)}, Options{Stdout: &out})
		if sum.Failed != 1 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: %+v\n%s\nwant a failure containing %q", tc.file, sum, out.String(), tc.want)
		}
	}
}

func TestRunSelectsAndFindRecurses(t *testing.T) {
	files, err := Find([]string{"testdata"})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Errorf("Find(testdata) = %v, want the 4 *_test.lua files", files)
	}
	var out bytes.Buffer
	sum := Run([]string{"testdata/api_test.lua"}, Options{Stdout: &out, Run: regexp.MustCompile(`^the clock /`)})
	if sum.Passed != 4 || sum.Failed != 0 {
		t.Errorf("--run '^the clock /': %+v\n%s", sum, out.String())
	}
	if _, err := Find([]string{"testdata/failing/mod.lua", "nonexistent"}); err == nil {
		t.Error("Find of a missing path succeeded")
	}
}

// stdlib/types/luahost_test.lua describes the test API for editors: it
// must name every function a test file gets, and nothing else.
func TestStubsDescribeTheAPI(t *testing.T) {
	src, err := os.ReadFile("../../../stdlib/types/luahost_test.lua")
	if err != nil {
		t.Fatal(err)
	}
	stubbed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^function t\.([a-z_.]+)\(`).FindAllStringSubmatch(string(src), -1) {
		stubbed[m[1]] = true
	}
	fr := &fileRun{L: sandbox.NewState()}
	defer fr.L.Close()
	real := map[string]bool{}
	fr.api().ForEach(func(k, v lua.LValue) {
		if sub, ok := v.(*lua.LTable); ok {
			sub.ForEach(func(k2, _ lua.LValue) { real[k.String()+"."+k2.String()] = true })
			return
		}
		real[k.String()] = true
	})
	for name := range real {
		if !stubbed[name] {
			t.Errorf("t.%s has no stub in stdlib/types/luahost_test.lua", name)
		}
	}
	for name := range stubbed {
		if !real[name] {
			t.Errorf("stdlib/types/luahost_test.lua stubs t.%s, which the test API does not have", name)
		}
	}
}
