package tests

import (
	"os"
	"testing"
)

// TestMain removes the luahost binary the end-to-end tests share, once
// every test that uses it has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if reloadBinDir != "" {
		os.RemoveAll(reloadBinDir)
	}
	os.Exit(code)
}
