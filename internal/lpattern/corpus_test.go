package lpattern

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected results in testdata/corpus.txt from lua5.1")

const corpusPath = "testdata/corpus.txt"

// TestCorpus runs every case of testdata/corpus.txt, whose expected results
// are lua5.1's own answers (TestCorpusLua51 keeps them so), through this
// package.
func TestCorpus(t *testing.T) {
	_, cases := readCorpus(t, corpusPath)
	if len(cases) < 150 {
		t.Fatalf("the corpus has %d cases; it should cover every feature and error (150 or more)", len(cases))
	}
	for _, c := range cases {
		if !c.has {
			t.Errorf("%s: no expected result (run go test -run TestCorpusLua51 -update)", c)
			continue
		}
		if got := eval(c, nil); got != c.want {
			t.Errorf("%s\n got: %s\nwant: %s", c, got, c.want)
		}
	}
}

// TestCorpusLua51 checks the corpus's expected results against the
// reference interpreter, so they are Lua 5.1's behaviour and not this
// package's. With -update it writes lua5.1's results into the file.
func TestCorpusLua51(t *testing.T) {
	lines, cases := readCorpus(t, corpusPath)
	results := runLua51(t, cases)
	if *update {
		for i, c := range cases {
			lines[c.line-1] = c.input + " => " + results[i]
		}
		if err := os.WriteFile(corpusPath, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for i, c := range cases {
		if results[i] != c.want {
			t.Errorf("%s\nlua5.1: %s\ncorpus: %s", c, results[i], c.want)
		}
	}
}
