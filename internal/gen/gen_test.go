package gen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A catalogue change must come with regenerated invokers and CLI table:
// run `go generate ./...` and commit the result.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatalf("%s: %v (run go generate ./...)", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./... and commit the result", path)
		}
	}
}
