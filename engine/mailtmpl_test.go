package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	. "github.com/luahost/luahost/engine"
)

// api.send_mail through a real SMTP server, api.read_templates, and the
// config keys behind them.

// mailParts returns the text and HTML parts of a multipart/alternative
// message, decoded.
func mailParts(t *testing.T, m smtpMessage) (headers map[string]string, text, html string) {
	t.Helper()
	msg := m.parsed(t)
	headers = map[string]string{}
	dec := new(mime.WordDecoder)
	for _, h := range []string{"From", "To", "Subject"} {
		v, err := dec.DecodeHeader(msg.Header.Get(h))
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		headers[h] = v
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	return headers, text, html
}

func emailYAML(port int) string {
	return fmt.Sprintf(`email:
  smtp_host: 127.0.0.1
  smtp_port: %d
  tls: none
  notif_from: "%%(app)s <noreply@example.org>"
  app_name: Luahost Test
public_baseurl: https://matrix.example.org
`, port)
}

// The account-renewal flow of synapse-email-account-validity: templates
// from the module's folder, rendered with the user's data, sent through
// SMTP with the configured From and app name; the message read back.
func TestSendMailRendersTemplatesAndDelivers(t *testing.T) {
	srv := startSMTP(t)
	h, _ := seededHost(t)
	if err := h.AddThreepid("@bob:example.org", "email", "Bob@Example.org"); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"validity/t.lua": fmt.Sprintf(caseModule, `
    eq(api.email_app_name, "Luahost Test", "email_app_name")
    eq(api.public_baseurl, "https://matrix.example.org/", "public_baseurl")
    local ts = api.read_templates({"notice.html", "notice.txt"}, "templates")
    local html, text = ts[1], ts[2]
    local tps = api.get_threepids_for_user("@bob:example.org")
    eq(#tps, 1, "threepids")
    local vars = { app_name = api.email_app_name, display_name = "Bob <b>", url = api.public_baseurl .. "renew?t=1&x=2" }
    api.send_mail(tps[1].address, "Renew your " .. api.email_app_name .. " account", html:render(vars), text:render(vars))`),
		"validity/templates/notice.html":  `{% include "_header.html" %}<p>Hi {{ display_name }}, <a href="{{ url }}">renew</a> on {{ server_name }}.</p>`,
		"validity/templates/_header.html": `<h1>{{ app_name }}</h1>`,
		"validity/templates/notice.txt":   `Hi {{ display_name }}, renew: {{ url }}`,
	}
	e := newTestEngine(t, h, files, "server_name: example.org\n"+emailYAML(srv.port)+"modules:\n  - module: validity/t.lua\n")
	if _, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "x")); err != nil {
		t.Fatal(err)
	}
	msgs := srv.wait(t, 1)
	if msgs[0].to != "bob@example.org" || msgs[0].from != "noreply@example.org" {
		t.Errorf("envelope from %q to %q", msgs[0].from, msgs[0].to)
	}
	hdr, text, html := mailParts(t, msgs[0])
	if hdr["From"] != `"Luahost Test" <noreply@example.org>` && hdr["From"] != "Luahost Test <noreply@example.org>" {
		t.Errorf("From = %q", hdr["From"])
	}
	if hdr["Subject"] != "Renew your Luahost Test account" {
		t.Errorf("Subject = %q", hdr["Subject"])
	}
	// .html autoescapes, .txt does not.
	wantHTML := `<h1>Luahost Test</h1><p>Hi Bob &lt;b&gt;, <a href="https://matrix.example.org/renew?t=1&amp;x=2">renew</a> on example.org.</p>`
	if strings.TrimSpace(html) != wantHTML {
		t.Errorf("html part:\n got %s\nwant %s", html, wantHTML)
	}
	if wantText := "Hi Bob <b>, renew: https://matrix.example.org/renew?t=1&x=2"; strings.TrimSpace(text) != wantText {
		t.Errorf("text part:\n got %s\nwant %s", text, wantText)
	}
}

// mailRecorder is a homeserver with its own mailer (engine.MailSender).
type mailRecorder struct {
	nameHost
	mu   sync.Mutex
	sent []Mail
}

func (m *mailRecorder) SendMail(_ context.Context, mail Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, mail)
	return nil
}

func TestSendMailChoosesTheHostMailerOrExplainsWhatIsMissing(t *testing.T) {
	send := `api.send_mail("a@example.org", "S", "<p>h</p>", "t")`
	t.Run("host mailer wins", func(t *testing.T) {
		h := &mailRecorder{nameHost: "example.org"}
		// The config's email: section is for luahost's own SMTP client; a
		// homeserver with a mailer sends (here the SMTP port is closed).
		if err := runLua(t, h, send, "email: {smtp_port: 1, notif_from: a@example.org, app_name: Corp}\n", ""); err != nil {
			t.Fatal(err)
		}
		if len(h.sent) != 1 || h.sent[0] != (Mail{To: "a@example.org", Subject: "S", HTML: "<p>h</p>", Text: "t", AppName: "Corp"}) {
			t.Fatalf("sent %+v", h.sent)
		}
	})
	t.Run("no email section", func(t *testing.T) {
		err := runLua(t, nameHost("example.org"), send, "", "")
		if err == nil || !strings.Contains(err.Error(), "(t.lua:7)") || !strings.Contains(err.Error(), "send_mail: no email: section in the config") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		err := runLua(t, nameHost("example.org"), `
    eq(api.email_app_name, "Matrix", "email_app_name")
    eq(api.public_baseurl, "https://example.org/", "public_baseurl")
    eq(api.worker_name, nil, "worker_name")`, "", "")
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("smtp failure raises at the line", func(t *testing.T) {
		srv := startSMTP(t)
		err := runLua(t, nameHost("example.org"), `api.send_mail("a@example.org\r\nBcc: x@evil.example", "S", "h", "t")`, emailYAML(srv.port), "")
		if err == nil || !strings.Contains(err.Error(), "(t.lua:7)") || !strings.Contains(err.Error(), "send_mail: send mail: To header: refusing a line break") {
			t.Fatalf("got %v", err)
		}
		if n := len(srv.messages()); n != 0 {
			t.Fatalf("%d messages sent", n)
		}
	})
}

func TestReadTemplates(t *testing.T) {
	files := map[string]string{
		"mod/t.lua":               "",
		"mod/page.html":           `<p>{{ who }}</p>{% for r in rooms %}[{{ loop.index }}:{{ r.name | upper }}]{% endfor %}`,
		"mod/plain.txt":           `{{ who }}{% if n > 1 %} x{{ n }}{% endif %}`,
		"mod/mail/a.html":         `{% extends "base.html" %}{% block body %}A {{ super() }}{% endblock %}`,
		"mod/mail/base.html":      `<b>{% block body %}base{% endblock %}</b>`,
		"mod/broken.html":         "line 1\n{% if x %}\nunclosed",
		"mod/macro.html":          `{% macro m() %}x{% endmacro %}`,
		"mod/loop.html":           `{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}`,
		"mod/ts.html":             `{{ ts | format_ts("%Y-%m-%d") }} {{ "mxc://example.org/abc" | mxc_to_http(32, 32) }}`,
		"secret.html":             "outside the module's folder",
		"mod/dyn.html":            `{% include name %}`,
		"mod/mail/included.html":  "inc",
		"mod/mail/fragments.html": "frag",
	}
	tests := []struct{ name, lua, wantErr string }{
		{name: "render", lua: `
    local ts = api.read_templates({"page.html", "plain.txt"})
    eq(#ts, 2, "count")
    eq(ts[1]:render({who = "<Ann>", rooms = {{name = "a"}, {name = "b"}}}), "<p>&lt;Ann&gt;</p>[1:A][2:B]", "html")
    eq(ts[2]:render({who = "<Ann>", n = 3}), "<Ann> x3", "txt")
    eq(ts[2].render({who = "dot", n = 1}), "dot", "dot call")
    eq(ts[1].name, "page.html", "name")
    eq(tostring(ts[1]), "template mod/page.html", "tostring")`},
		{name: "subfolder with extends", lua: `
    local t = api.read_templates({"a.html"}, "mail")[1]
    eq(t:render(), "<b>A base</b>", "extends")`},
		{name: "synapse filters", lua: `
    local t = api.read_templates({"ts.html"})[1]
    eq(t:render({ts = 0}), "1970-01-01 https://matrix.example.org/_matrix/media/v1/thumbnail/example.org/abc?width=32&amp;height=32&amp;method=crop", "filters")`},
		{name: "syntax error names file and line", lua: `api.read_templates({"broken.html"})`,
			wantErr: "(mod/t.lua:7): check_event_for_spam: read_templates: mod/broken.html:2: {% if %} is never closed"},
		{name: "unsupported feature at load", lua: `api.read_templates({"macro.html"})`,
			wantErr: "mod/macro.html:1:"},
		{name: "missing template", lua: `api.read_templates({"nope.html"})`,
			wantErr: `(mod/t.lua:7): check_event_for_spam: read_templates: template "nope.html": open nope.html: file does not exist`},
		{name: "name leaving the folder", lua: `api.read_templates({"../secret.html"})`,
			wantErr: "leaves the template folder"},
		{name: "folder leaving the module", lua: `api.read_templates({"secret.html"}, "..")`,
			wantErr: `bad argument #2 (folder): ".." must be a folder inside the module's folder`},
		{name: "names must be a list", lua: `api.read_templates("page.html")`,
			wantErr: `array of template names expected, got string (a list, as in Synapse`},
		{name: "runaway render stops", lua: `api.read_templates({"loop.html"})[1]:render()`,
			wantErr: "render: mod/loop.html:1:"},
		{name: "render error raises at the line", lua: `
    local t = api.read_templates({"dyn.html"})[1]
    eq(t:render({name = "mail/included.html"}), "inc", "an include named by a variable")
    t:render({name = "nope.html"})`,
			wantErr: `(mod/t.lua:10): check_event_for_spam: render: mod/dyn.html:1: template "nope.html" not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := map[string]string{}
			for k, v := range files {
				fs[k] = v
			}
			fs["mod/t.lua"] = fmt.Sprintf(caseModule, tc.lua)
			e := newTestEngine(t, nameHost("example.org"), fs,
				"server_name: example.org\npublic_baseurl: https://matrix.example.org/\nmodules:\n  - module: mod/t.lua\n")
			_, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "x"))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// From disk, templates are read through an os.Root: a symbolic link out
// of the module's folder is refused. A template the module's load read is
// part of the module: editing it reloads the module.
func TestReadTemplatesFromDisk(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("outside.txt", "secret")
	write("mod/tpl/hello.txt", "hello {{ who }}")
	write("mod/m.lua", `local M = {}
function M.new(config, api)
  local t = api.read_templates({"hello.txt"}, "tpl")[1]
  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
    if ev.content.body == "link" then api.read_templates({"link.txt"}, "tpl") end
    if t:render({who = "world"}) == ev.content.body then return api.NOT_SPAM end
    return api.Codes.FORBIDDEN
  end }
end
return M
`)
	if err := os.Symlink(filepath.Join(dir, "outside.txt"), filepath.Join(dir, "mod", "tpl", "link.txt")); err != nil {
		t.Skip("symbolic links are not available here:", err)
	}
	cfgFile := filepath.Join(dir, "luahost.yaml")
	write("luahost.yaml", "server_name: example.org\nmodules:\n  - module: mod/m.lua\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := Start(ctx, cfgFile, Options{Logger: hostfuncsLog, NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	check := func(body string) error {
		_, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", body))
		return err
	}
	if d, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "hello world")); err != nil || !d.Allowed() {
		t.Fatalf("render from disk: %+v %v", d, err)
	}
	if err := check("link"); err == nil || !strings.Contains(err.Error(), "path escapes from parent") {
		t.Fatalf("a link out of the folder: %v", err)
	}
	found := false
	for _, f := range e.Files() {
		if f == "mod/tpl/hello.txt" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the template is not among the watched files: %v", e.Files())
	}
	write("mod/tpl/hello.txt", "bonjour {{ who }}")
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "bonjour world")); err != nil || !d.Allowed() {
		t.Fatalf("after editing the template: %+v %v", d, err)
	}
}

func TestModAPIConfigKeys(t *testing.T) {
	tests := []struct{ name, yaml, wantErr string }{
		{"email ok", "email: {smtp_host: mail.example.org, smtp_port: 587, smtp_user: u, smtp_pass: p, tls: starttls, notif_from: 'Matrix <n@example.org>', app_name: X}\n", ""},
		{"email synapse booleans", "email: {notif_from: n@example.org, require_transport_security: true}\n", ""},
		{"email bad port", "email: {smtp_port: 70000, notif_from: n@example.org}\n", `test.yaml:2: email.smtp_port "70000" is not a port number`},
		{"email bad tls", "email: {tls: maybe, notif_from: n@example.org}\n", `test.yaml:2: email.tls: "maybe" is not one of none, starttls, opportunistic, tls`},
		{"email no from", "email: {smtp_host: localhost}\n", "test.yaml:2: email.notif_from is not set"},
		{"email both tls forms", "email:\n  tls: tls\n  force_tls: true\n  notif_from: n@example.org\n", "test.yaml:4: email: give either tls:"},
		{"email unknown key", "email: {smtp_hots: x, notif_from: n@example.org}\n", `email: unknown key "smtp_hots"`},
		{"public_baseurl", "public_baseurl: ftp://x/\n", `public_baseurl "ftp://x/" must be an http or https URL`},
		{"instance_name", "instance_name: 'worker 1'\n", `instance_name "worker 1" may only contain`},
		{"store_namespace", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte("server_name: example.org\n"+tc.yaml+"modules:\n  - module: a.lua\n"), "test.yaml")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
	modTests := []struct{ name, entry, wantErr string }{
		{"namespace", "    store_namespace: shared.stats\n", ""},
		{"namespace with colon", "    store_namespace: 'a:b'\n", `store_namespace "a:b" may only contain`},
		{"background 0", "    background_timeout: 0\n", ""},
		{"background duration", "    background_timeout: 90s\n", ""},
		{"background negative", "    background_timeout: -1s\n", "background_timeout:"},
	}
	for _, tc := range modTests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: a.lua\n"+tc.entry), "test.yaml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := cfg.Modules[0]
			switch tc.name {
			case "namespace":
				if m.StoreNamespace != "shared.stats" {
					t.Errorf("StoreNamespace = %q", m.StoreNamespace)
				}
			case "background 0":
				if m.BackgroundTimeout != 0 {
					t.Errorf("BackgroundTimeout = %v", m.BackgroundTimeout)
				}
			case "background duration":
				if m.BackgroundTimeout.String() != "1m30s" {
					t.Errorf("BackgroundTimeout = %v", m.BackgroundTimeout)
				}
			}
		})
	}
	cfg, err := ParseConfig([]byte("modules:\n  - module: a.lua\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Modules[0]; m.StoreNamespace != "a" || m.BackgroundTimeout != DefaultBackgroundTimeout {
		t.Errorf("defaults: namespace %q, background_timeout %v", m.StoreNamespace, m.BackgroundTimeout)
	}
}
