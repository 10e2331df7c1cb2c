package jinja

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

var smallLimits = Options{MaxSteps: 100_000, MaxOutputBytes: 64 << 10, MaxDepth: 8, MaxTemplateBytes: 64 << 10}

// TestHostileTemplates: a template that would loop, allocate or recurse
// without end stops with an error naming the limit, its file and its line.
func TestHostileTemplates(t *testing.T) {
	chain := map[string]string{}
	for i := 0; i < 20; i++ {
		chain[fmt.Sprintf("n%d.txt", i)] = fmt.Sprintf("{%% include 'n%d.txt' %%}", i+1)
	}
	chain["n20.txt"] = "end"
	cyclic := map[string]any{}
	cyclic["a"], cyclic["b"] = cyclic, cyclic

	tests := []struct {
		name    string
		src     string
		files   map[string]string
		vars    map[string]any
		want    error
		wantMsg string
	}{
		{name: "nested loops", src: "\n{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}x{% endfor %}{% endfor %}{% endfor %}",
			want: ErrTooManySteps, wantMsg: "t.txt:2: too many evaluation steps: more than 100000"},
		{name: "huge range", src: "{{ range(10 ** 9)|length }}", want: ErrTooManySteps},
		{name: "huge list repetition", src: "{{ ([0] * 1000000000)|length }}", want: ErrTooManySteps},
		{name: "scanning a large string in a loop", src: "{% set s = 'x' * 60000 %}{% for i in range(10000) %}{{ s|length }}{% endfor %}", want: ErrTooManySteps},
		{name: "searching a long list in a loop", src: "{% set l = range(20000) %}{% for i in range(100) %}{{ -1 in l }}{% endfor %}", want: ErrTooManySteps},
		{name: "long output", src: "{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}", want: ErrOutputTooLarge,
			wantMsg: "t.txt:1: output would exceed 65536 bytes"},
		{name: "huge string repetition", src: "{{ ('x' * 1000000000)|length }}", want: ErrOutputTooLarge},
		{name: "concatenation past the limit", src: "{% set s = 'x' * 60000 %}{{ (s ~ s)|length }}", want: ErrOutputTooLarge},
		{name: "replace past the limit", src: "{{ ('x' * 1000)|replace('x', 'y' * 1000) }}", want: ErrOutputTooLarge},
		{name: "format past the limit", src: "{{ '%s%s' % ('x' * 40000, 'y' * 40000) }}", want: ErrOutputTooLarge},
		{name: "join past the limit", src: "{{ ['x' * 40000, 'y' * 40000]|join }}", want: ErrOutputTooLarge},
		{name: "include chain deeper than the limit", src: "{% include 'n0.txt' %}", files: chain, want: ErrTooDeep,
			wantMsg: "n6.txt:1: templates nested too deeply: more than 8 levels of include/extends"},
		{name: "printing a cyclic value", src: "{{ m }}", vars: map[string]any{"m": cyclic}, want: ErrOutputTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := renderCase{src: tt.src, files: tt.files, vars: tt.vars}
			out, err := c.render(smallLimits)
			if !errors.Is(err, tt.want) {
				t.Fatalf("render = %d bytes, error %v; want %v", len(out), err, tt.want)
			}
			var terr *Error
			if !errors.As(err, &terr) || terr.Line < 1 {
				t.Errorf("error %v does not name a file and line", err)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q lacks %q", err, tt.wantMsg)
			}
		})
	}
}

func TestRenderContext(t *testing.T) {
	ts, err := Load(fstest.MapFS{"t.txt": {Data: []byte("{% for a in range(300) %}{% for b in range(300) %}x{% endfor %}{% endfor %}")}}, []string{"t.txt"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = ts[0].RenderContext(ctx, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "t.txt:1: render stopped") {
		t.Fatalf("RenderContext with a cancelled context = %v, want context.Canceled at t.txt:1", err)
	}
	// The same template renders within the limits when nobody stops it.
	if out, err := ts[0].RenderContext(context.Background(), nil); err != nil || len(out) != 300*300 {
		t.Fatalf("RenderContext = %d bytes, %v; want 90000 bytes", len(out), err)
	}
}

// TestBoundedValues: operations whose Python result would be unbounded give
// a bounded one instead of hanging.
func TestBoundedValues(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["a"], cyclic["b"] = cyclic, cyclic
	tests := []struct {
		name, src string
		vars      map[string]any
		want      string
	}{
		// Python computes the exact big integer; here it overflows to float.
		{name: "huge power", src: "{{ 2 ** 100000000000 }} {{ 10 ** 20 }} {{ 2 ** 62 }}", want: "inf 1e+20 4611686018427387904"},
		{name: "comparing cyclic values", src: "{{ m == m }} {{ m|length }}", vars: map[string]any{"m": cyclic}, want: "False 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderCase{src: tt.src, vars: tt.vars}.render(smallLimits)
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestParserNesting: deeply nested syntax is refused at load time instead of
// recursing without bound.
func TestParserNesting(t *testing.T) {
	deep := 5000
	tests := map[string]string{
		"parentheses": "{{ " + strings.Repeat("(", deep) + "1" + strings.Repeat(")", deep) + " }}",
		"lists":       "{{ " + strings.Repeat("[", deep) + strings.Repeat("]", deep) + " }}",
		"not":         "{{ " + strings.Repeat("not ", deep) + "x }}",
		"minus":       "{{ " + strings.Repeat("-", deep) + "1 }}",
		"if tags":     strings.Repeat("{% if x %}", 200) + strings.Repeat("{% endif %}", 200),
		"for tags":    strings.Repeat("{% for x in y %}", 200) + strings.Repeat("{% endfor %}", 200),
		"conditional": "{{ " + strings.Repeat("1 if x else ", deep) + "2 }}",
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := renderCase{src: src}.render(smallLimits)
			if err == nil || !strings.Contains(err.Error(), "t.txt:1: nested more than 100 levels deep") {
				t.Fatalf("error = %v, want the nesting limit", err)
			}
		})
	}
}

func TestLoadRefusesNamesOutsideTheFolder(t *testing.T) {
	fsys := fstest.MapFS{"ok.txt": {Data: []byte("ok")}, "big.txt": {Data: []byte(strings.Repeat("x", 70<<10))}}
	tests := map[string]string{
		"../secret.txt":     "leaves the template folder",
		"a/../../x.txt":     "leaves the template folder",
		"/etc/passwd":       "must be a relative slash-separated path",
		`..\windows.txt`:    "must be a relative slash-separated path",
		"":                  "empty template name",
		"missing.txt":       "file does not exist",
		"big.txt":           "larger than 65536 bytes",
		"nul\x00.txt":       "must be a relative slash-separated path",
		"./sub/./../ok.txt": "leaves the template folder",
	}
	for name, want := range tests {
		_, err := LoadWithOptions(fsys, []string{"ok.txt", name}, smallLimits)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%q) error = %v, want one containing %q", name, err, want)
		}
	}
	if _, err := LoadWithOptions(fsys, []string{"./ok.txt", ".//ok.txt"}, smallLimits); err != nil {
		t.Errorf("Load of clean equivalents of ok.txt: %v", err)
	}
}

// TestOSRootRefusesSymlinksOut shows the folder to give Load in production:
// an os.Root's FS refuses a symbolic link that leads outside it, which
// os.DirFS follows.
func TestOSRootRefusesSymlinksOut(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "templates")
	if err := os.Mkdir(tmpl, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmpl, "t.txt"), []byte("[{% include 'link.txt' %}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "secret.txt"), filepath.Join(tmpl, "link.txt")); err != nil {
		t.Skipf("cannot create a symbolic link here: %v", err)
	}
	root, err := os.OpenRoot(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = Load(root.FS(), []string{"t.txt"})
	if err == nil || !strings.Contains(err.Error(), "t.txt:1:") {
		t.Fatalf("Load through os.Root = %v, want the include through the link refused at t.txt:1", err)
	}
}
