package jinja

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzTemplate loads and renders arbitrary template text: it must never
// panic, and with small limits it must finish with output within the cap
// or an *Error naming a file and line. The text is also the folder's
// "inc.txt", so self- and mutual includes are exercised.
func FuzzTemplate(f *testing.F) {
	for _, c := range renderCases {
		f.Add(c.src)
	}
	for _, c := range errorCases {
		f.Add(c.src)
	}
	for _, name := range []string{"account_renewal.html", "account_renewal.txt", "_base.html"} {
		data, err := os.ReadFile(filepath.Join("testdata", "renewal", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	for _, s := range []string{
		"{% include 'f.html' %}",
		"{% include 'inc.txt' %}{% include 'g.txt' %}",
		"{% extends 'inc.txt' %}{% block a %}{{ super() }}{% endblock %}",
		"{% for i in range(1000000) %}{% for j in range(1000000) %}{{ i }}{% endfor %}{% endfor %}",
		"{{ 'x' * 100000000 }}",
		"{{ (((((((((((1)))))))))) }}",
		"{% raw %}{% endraw %}{#-#}{{-x-}}{%- if 1 -%}{%- endif -%}",
		"{{ '%(a)s %%' % {'a': 1} }}{{ '%*d' % (1, 2) }}",
		"{{ d.items()|list }}{{ xs[::-1] }}{{ xs[-100:100:-3] }}",
		"{% set a, b = xs %}{{ a }}{% set c %}{{ b }}{% endset %}{{ c|e }}",
		"{{ {'a': {'b': [1, {'c': 2}]}} }}",
		"{{ x|format_ts('%Y') }}{{ 'mxc://a/b'|mxc_to_http(1, 2) }}",
	} {
		f.Add(s)
	}
	vars := map[string]any{
		"x": "<b>", "n": 3.0, "f": 2.5, "xs": []any{1.0, "a", nil, true},
		"d": map[string]any{"k": "v", "n": []any{map[string]any{}}}, "none": nil,
	}
	opts := Options{
		MaxSteps: 20_000, MaxOutputBytes: 1 << 16, MaxDepth: 4, MaxTemplateBytes: 1 << 16,
		PublicBaseURL: "https://m.example.org/",
	}
	f.Fuzz(func(t *testing.T, src string) {
		fsys := fstest.MapFS{
			"f.html":  {Data: []byte(src)},
			"g.txt":   {Data: []byte(src)},
			"inc.txt": {Data: []byte(src)},
		}
		ts, err := LoadWithOptions(fsys, []string{"f.html", "g.txt"}, opts)
		if err != nil {
			checkError(t, err)
			return
		}
		for _, tmpl := range ts {
			out, err := tmpl.Render(vars)
			if err != nil {
				checkError(t, err)
				continue
			}
			if len(out) > opts.MaxOutputBytes {
				t.Fatalf("%s: %d bytes of output, over the %d cap", tmpl.Name(), len(out), opts.MaxOutputBytes)
			}
		}
	})
}

func checkError(t *testing.T, err error) {
	t.Helper()
	var terr *Error
	if !errors.As(err, &terr) {
		// Load reports an unreadable name without a line only for the
		// names it was asked for, which are fixed here.
		t.Fatalf("error without a file and line: %v", err)
	}
	if terr.File == "" || terr.Line < 1 || strings.Contains(err.Error(), "internal error") {
		t.Fatalf("bad error: %v", err)
	}
}
