package jinja

import (
	"html/template"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The account-renewal email in testdata/renewal is written the way Synapse
// module templates are (extends a base, includes fragments and a CSS file
// chosen by app_name, format_ts, autoescape by extension). The files in
// want/ are what Jinja2 3.1.6 renders with Synapse's setup;
// TestAgainstJinja2 checks them again when Jinja2 is installed.

var renewalOptions = Options{
	Globals:  map[string]any{"server_name": "example.org"},
	Location: time.UTC,
}

// renewalVars are shaped as Lua tables arrive from the Lua-to-Go
// conversion: numbers are float64, arrays []any, tables map[string]any.
var renewalVars = map[string]map[string]any{
	"account_renewal": {
		"display_name":  "Zoë <script>alert(1)</script> & co",
		"expiration_ts": 1767225600000.0,
		"url":           "https://matrix.example.org/_synapse/client/email_account_validity/renew?token=a1b2&ref=email",
		"app_name":      "Element",
		"rooms":         []any{map[string]any{"name": "Café <Lounge>"}, map[string]any{}},
	},
	"account_renewal_minimal": {
		"display_name":  "@bob:example.org",
		"expiration_ts": 1767225600000.0 + 86399999,
		"url":           "https://m.example.org/renew?token=x",
	},
}

func loadRenewal(t testing.TB) (html, text *Template) {
	t.Helper()
	ts, err := LoadWithOptions(os.DirFS(filepath.Join("testdata", "renewal")),
		[]string{"account_renewal.html", "account_renewal.txt"}, renewalOptions)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return ts[0], ts[1]
}

func readWant(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "renewal", "want", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRenewalEmail(t *testing.T) {
	html, text := loadRenewal(t)
	if html.Name() != "account_renewal.html" || text.Name() != "account_renewal.txt" {
		t.Fatalf("names %q, %q: want them in the order asked", html.Name(), text.Name())
	}
	for variant, vars := range renewalVars {
		for _, tmpl := range []*Template{html, text} {
			want := readWant(t, strings.Replace(tmpl.Name(), "account_renewal", variant, 1))
			got, err := tmpl.Render(vars)
			if err != nil {
				t.Fatalf("%s with %s: %v", tmpl.Name(), variant, err)
			}
			if got != want {
				t.Errorf("%s with %s vars:\n--- got\n%s\n--- want\n%s", tmpl.Name(), variant, got, want)
			}
		}
	}
}

// TestRenderConcurrently renders the same templates from several
// goroutines (as several Lua states would), including a template loaded on
// first use by a dynamic include; run with -race.
func TestRenderConcurrently(t *testing.T) {
	html, text := loadRenewal(t)
	wantHTML := readWant(t, "account_renewal.html")
	wantText := readWant(t, "account_renewal.txt")
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				for _, c := range []struct {
					tmpl *Template
					want string
				}{{html, wantHTML}, {text, wantText}} {
					got, err := c.tmpl.Render(renewalVars["account_renewal"])
					if err != nil || got != c.want {
						errs <- c.tmpl.Name() + ": wrong output or error"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// goRenewal is the renewal email in html/template's syntax: the baseline
// of BenchmarkRenewalHTML (the same output shape and the same escaping).
const goRenewal = `{{define "base"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{template "title" .}}</title>
<style type="text/css">
body { font-family: "Helvetica Neue", Arial, sans-serif; color: #222; }
a { color: #0b6e4f; }
{{if eq .app_name "Element"}}.logo { background: #0dbd8b; }{{end}}
</style>
</head>
<body>{{template "body" .}}
<p class="footer">
  This email was sent by {{.server_name}} because an account there is about to expire.
</p>
</body>
</html>{{end}}
{{define "title"}}Renew your {{.app_name}} account{{end}}
{{define "body"}}
<p class="greeting">Hello {{.display_name}},</p>
<p>Your account will expire on <strong>{{formatTS .expiration_ts}}</strong>.
After that date you will not be able to sign in any more.</p>
<p>To keep your account, follow this link (or copy it into your browser):</p>
<p><a href="{{.url}}">{{.url}}</a></p>
{{- with .rooms}}
<p>You are in {{len .}} rooms:</p>
<ul>
{{- range $i, $room := .}}
  <li{{if eq $i 0}} class="first"{{end}}>{{inc $i}}. {{or $room.name "Unnamed room"}}</li>
{{- end}}
</ul>
{{- end}}
{{end}}`

// BenchmarkRenewalHTML renders the renewal email with this engine and, as
// the baseline, with html/template (parsed once, like Load).
func BenchmarkRenewalHTML(b *testing.B) {
	vars := map[string]any{}
	for k, v := range renewalVars["account_renewal"] {
		vars[k] = v
	}
	vars["server_name"] = "example.org"
	b.Run("jinja", func(b *testing.B) {
		html, _ := loadRenewal(b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := html.Render(vars); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("html_template", func(b *testing.B) {
		tmpl := template.Must(template.New("").Funcs(template.FuncMap{
			"formatTS": func(ms float64) string { return time.UnixMilli(int64(ms)).UTC().Format("02-01-2006") },
			"inc":      func(i int) int { return i + 1 },
		}).Parse(goRenewal))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var sb strings.Builder
			if err := tmpl.ExecuteTemplate(&sb, "base", vars); err != nil {
				b.Fatal(err)
			}
		}
	})
}
