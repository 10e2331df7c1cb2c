package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/luahost/luahost/cmd/luahost/luatest"
)

// `luahost test scripts/examples` passes: every example module's own
// tests run as part of go test. Each example module has a test file.
func TestExampleModuleTests(t *testing.T) {
	files, err := luatest.Find([]string{"../scripts/examples"})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range files {
		have[f] = true
	}
	modules, _ := filepath.Glob("../scripts/examples/*/*.lua")
	for _, m := range modules {
		if strings.HasSuffix(m, "_test.lua") {
			continue
		}
		if want := strings.TrimSuffix(m, ".lua") + "_test.lua"; !have[want] {
			t.Errorf("%s has no test file %s", shown(m), filepath.Base(want))
		}
	}
	var out bytes.Buffer
	sum := luatest.Run(files, luatest.Options{Stdout: &out})
	if sum.Failed > 0 || sum.Passed == 0 {
		t.Errorf("luahost test scripts/examples: %d passed, %d failed:\n%s", sum.Passed, sum.Failed, out.String())
	}
	if testing.Verbose() {
		os.Stdout.Write(out.Bytes())
	}
}
