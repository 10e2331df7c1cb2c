package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"

	"github.com/luahost/luahost/cmd/luahost/luatest"
)

// cmdTest runs module test files: `luahost test [flags] [paths...]`.
func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("luahost test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	run := fs.String("run", "", "run only the tests whose name matches this regular expression")
	jsonOut := fs.Bool("json", false, "print one JSON object per test")
	verbose := fs.Bool("v", false, "print every test and its output, not only failures")
	timeout := fs.Duration("timeout", luatest.DefaultTimeout, "how long one test's own Lua code may run")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: luahost test [-v] [--run PATTERN] [--json] [paths...]")
		fmt.Fprintln(stderr, "Runs the *_test.lua files under the paths (default: the current folder). See docs/testing.md.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := luatest.Options{Stdout: stdout, Stderr: stderr, Verbose: *verbose, JSON: *jsonOut, Timeout: *timeout}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintf(stderr, "error: --run: %v\n", err)
			return 2
		}
		opts.Run = re
	}
	files, err := luatest.Find(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	if sum := luatest.Run(files, opts); sum.Failed > 0 {
		return 1
	}
	return 0
}
