// Package luatest runs module test files (`*_test.lua`) for `luahost
// test`: each test gets the real engine and sandbox with a fresh
// in-memory homeserver, an empty memory store, a fake clock and stubbed
// outbound HTTP, driven from Lua through require("luahost.test") (see
// docs/testing.md). The test API exists only in test files' own states:
// the modules under test are loaded exactly as `luahost serve` loads them.
package luatest

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Options control a run.
type Options struct {
	Stdout, Stderr io.Writer
	// Run, when set, selects tests whose full name ("group / name")
	// it matches.
	Run *regexp.Regexp
	// Verbose prints every test and its output, not only failures.
	Verbose bool
	// JSON prints one JSON object per test on Stdout instead of text.
	JSON bool
	// Timeout bounds one test's Lua code (default DefaultTimeout); calls
	// into modules are bounded by the modules' own timeouts.
	Timeout time.Duration
}

// DefaultTimeout is how long one test's own Lua code may run.
const DefaultTimeout = time.Minute

// Result is one test's outcome.
type Result struct {
	File    string  `json:"file"`
	Name    string  `json:"test"`
	Status  string  `json:"status"`  // "pass", "fail" or "skip"
	Elapsed float64 `json:"elapsed"` // seconds
	// Error is the failure (or the skip reason), with Line the test
	// file's line it points at (0 when unknown).
	Error string `json:"error,omitempty"`
	Line  int    `json:"line,omitempty"`
	// Output is what the test printed and what the modules logged.
	Output string `json:"output,omitempty"`
}

// Summary counts a run's results.
type Summary struct {
	Passed, Failed, Skipped int
	Files                   int
}

// Find lists the *_test.lua files under paths (files are taken as they
// are), sorted, each once.
func Find(paths []string) ([]string, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), "_test.lua") && !seen[path] {
				seen[path] = true
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no *_test.lua files", p)
		}
		out = append(out, found...)
	}
	sort.Strings(out)
	return out, nil
}

// Run runs every test of the files and reports as opts say. It returns
// the counts; Failed > 0 means the run failed.
func Run(files []string, opts Options) Summary {
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	var sum Summary
	for _, f := range files {
		sum.Files++
		began := time.Now()
		results := runFile(f, opts)
		failed := 0
		for _, r := range results {
			switch r.Status {
			case "pass":
				sum.Passed++
			case "fail":
				sum.Failed++
				failed++
			case "skip":
				sum.Skipped++
			}
			report(opts, r)
		}
		if !opts.JSON {
			status := "ok  "
			if failed > 0 {
				status = "FAIL"
			}
			fmt.Fprintf(opts.Stdout, "%s %s (%d tests, %.2fs)\n", status, f, len(results), time.Since(began).Seconds())
		}
	}
	if !opts.JSON {
		status := "PASS"
		if sum.Failed > 0 {
			status = "FAIL"
		}
		line := fmt.Sprintf("%s: %d passed, %d failed", status, sum.Passed, sum.Failed)
		if sum.Skipped > 0 {
			line += fmt.Sprintf(", %d skipped", sum.Skipped)
		}
		fmt.Fprintln(opts.Stdout, line)
	}
	return sum
}

// report prints one result.
func report(opts Options, r Result) {
	if opts.JSON {
		b, _ := json.Marshal(r)
		fmt.Fprintln(opts.Stdout, string(b))
		return
	}
	w := opts.Stdout
	name := r.File + ": " + r.Name
	switch {
	case r.Status == "fail":
		fmt.Fprintf(w, "--- FAIL: %s (%.2fs)\n", name, r.Elapsed)
		fmt.Fprint(w, indent(r.Error))
		if r.Output != "" {
			fmt.Fprint(w, indent(r.Output))
		}
	case opts.Verbose && r.Status == "skip":
		fmt.Fprintf(w, "--- SKIP: %s (%.2fs)\n", name, r.Elapsed)
		fmt.Fprint(w, indent(r.Error))
	case opts.Verbose:
		fmt.Fprintf(w, "--- PASS: %s (%.2fs)\n", name, r.Elapsed)
		if r.Output != "" {
			fmt.Fprint(w, indent(r.Output))
		}
	}
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}
