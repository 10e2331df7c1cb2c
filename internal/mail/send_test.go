package mail

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// parsedMail is a received message taken apart the way a mail client would.
type parsedMail struct {
	header mail.Header
	parts  []parsedPart
}

type parsedPart struct {
	contentType string
	encoding    string
	rawLines    []string // the part's body as sent, before decoding
	body        string   // decoded, line endings as sent
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, data)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	pm := parsedMail{header: msg.Header}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("multipart body: %v", err)
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		part := parsedPart{
			contentType: p.Header.Get("Content-Type"),
			encoding:    p.Header.Get("Content-Transfer-Encoding"),
			rawLines:    strings.Split(string(raw), "\r\n"),
		}
		decoded, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatalf("part %s is not valid quoted-printable: %v", part.contentType, err)
		}
		part.body = string(decoded)
		pm.parts = append(pm.parts, part)
	}
	return pm
}

func TestSendDeliversMultipartAlternative(t *testing.T) {
	srv := startServer(t, serverOptions{})
	cfg := srv.config(TLSNone)

	longLine := strings.Repeat("renew your account = keep your rooms; ", 6)
	text := "Hi Zoë,\n\nYour account expires on 01-02-2027.\n" + longLine + "\n.\n.a line that starts with a dot\n"
	html := "<p>Hi Zoë,</p>\n<p><a href=\"https://example.org/renew?token=abc&amp;x=1\">Renew</a></p>\n"
	subjects := []string{
		"Renew your Luahost Test account",
		"Renouvelez votre compte — expiration le 01/02/2027",
		strings.TrimSpace(strings.Repeat("A long plain subject that must be folded ", 4)),
		strings.TrimSpace(strings.Repeat("Sujet très long qui doit être encodé et plié ", 4)),
	}
	for _, subject := range subjects {
		before := time.Now().Add(-time.Second)
		err := Send(testContext(t), cfg, Message{To: "Zoë Example <zoe@example.org>", Subject: subject, HTML: html, Text: text})
		if err != nil {
			t.Fatalf("Send(subject %q): %v", subject, err)
		}
		msgs := srv.messages()
		got := msgs[len(msgs)-1]
		if got.from != "noreply@example.org" || got.to != "zoe@example.org" {
			t.Errorf("envelope = MAIL FROM %q RCPT TO %q, want noreply@example.org / zoe@example.org", got.from, got.to)
		}
		for i, line := range strings.Split(string(got.data), "\r\n") {
			if len(line) > 998 {
				t.Errorf("line %d is %d bytes long, over RFC 5322's 998", i+1, len(line))
			}
		}
		pm := parseMail(t, got.data)

		var dec mime.WordDecoder
		gotSubject, err := dec.DecodeHeader(pm.header.Get("Subject"))
		if err != nil || gotSubject != subject {
			t.Errorf("Subject decodes to %q (%v), want %q", gotSubject, err, subject)
		}
		rawSubject := pm.header.Get("Subject")
		if isASCII(subject) != (rawSubject == subject) {
			t.Errorf("Subject header %q: want RFC 2047 encoding exactly when the subject is not ASCII", rawSubject)
		}
		from, err := pm.header.AddressList("From")
		if err != nil || len(from) != 1 || from[0].Name != "Luahost Test" || from[0].Address != "noreply@example.org" {
			t.Errorf("From = %v (%v), want \"Luahost Test\" <noreply@example.org> (notif_from with %%(app)s replaced)", from, err)
		}
		to, err := pm.header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Name != "Zoë Example" || to[0].Address != "zoe@example.org" {
			t.Errorf("To = %v (%v), want \"Zoë Example\" <zoe@example.org>", to, err)
		}
		date, err := pm.header.Date()
		if err != nil || date.Before(before) || date.After(time.Now().Add(time.Second)) {
			t.Errorf("Date = %v (%v), want about now", date, err)
		}
		if id := pm.header.Get("Message-ID"); !regexp.MustCompile(`^<[0-9a-f]{32}@example\.org>$`).MatchString(id) {
			t.Errorf("Message-ID = %q, want <random@example.org>", id)
		}
		if v := pm.header.Get("MIME-Version"); v != "1.0" {
			t.Errorf("MIME-Version = %q, want 1.0", v)
		}

		if len(pm.parts) != 2 {
			t.Fatalf("got %d parts, want 2 (text, then HTML)", len(pm.parts))
		}
		for i, want := range []struct{ ctype, body string }{
			{"text/plain; charset=utf-8", text},
			{"text/html; charset=utf-8", html},
		} {
			p := pm.parts[i]
			if p.contentType != want.ctype || p.encoding != "quoted-printable" {
				t.Errorf("part %d: Content-Type %q, Content-Transfer-Encoding %q; want %q, quoted-printable", i, p.contentType, p.encoding, want.ctype)
			}
			// Quoted-printable sends line breaks as CRLF (MIME's canonical
			// text form); the words must come back unchanged.
			if got := strings.ReplaceAll(p.body, "\r\n", "\n"); got != want.body {
				t.Errorf("part %d decodes to\n%q\nwant\n%q", i, got, want.body)
			}
			for _, l := range p.rawLines {
				if len(l) > 76 {
					t.Errorf("part %d: encoded line of %d characters, quoted-printable allows 76: %q", i, len(l), l)
				}
			}
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestSendTLSModes(t *testing.T) {
	tests := []struct {
		name    string
		server  serverOptions
		mode    TLSMode
		noCA    bool   // do not trust the test certificate
		wantTLS bool   // the message arrived over TLS
		wantErr string // Send fails with this, and nothing is delivered
	}{
		{name: "none ignores an offered STARTTLS", server: serverOptions{starttls: true}, mode: TLSNone, wantTLS: false},
		{name: "opportunistic upgrades when offered", server: serverOptions{starttls: true}, mode: TLSOpportunistic, wantTLS: true},
		{name: "opportunistic sends in clear when not offered", server: serverOptions{}, mode: TLSOpportunistic, wantTLS: false},
		{name: "starttls upgrades", server: serverOptions{starttls: true}, mode: TLSStartTLS, wantTLS: true},
		{name: "starttls fails when not offered", server: serverOptions{}, mode: TLSStartTLS, wantErr: "does not offer STARTTLS"},
		{name: "starttls checks the certificate", server: serverOptions{starttls: true}, mode: TLSStartTLS, noCA: true, wantErr: "certificate"},
		{name: "implicit tls", server: serverOptions{implicitTLS: true}, mode: TLSImplicit, wantTLS: true},
		{name: "implicit tls checks the certificate", server: serverOptions{implicitTLS: true}, mode: TLSImplicit, noCA: true, wantErr: "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, tt.server)
			cfg := srv.config(tt.mode)
			if tt.noCA {
				cfg.TLSConfig = nil
			}
			err := Send(testContext(t), cfg, Message{To: "alice@example.org", Subject: "s", Text: "t", HTML: "<p>h</p>"})
			msgs := srv.messages()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Send error = %v, want one containing %q", err, tt.wantErr)
				}
				if len(msgs) != 0 {
					t.Fatalf("server received %d messages despite the error", len(msgs))
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(msgs) != 1 {
				t.Fatalf("server received %d messages, want 1", len(msgs))
			}
			if msgs[0].tls != tt.wantTLS {
				t.Errorf("message arrived over TLS = %v, want %v", msgs[0].tls, tt.wantTLS)
			}
		})
	}
}

func TestSendAuth(t *testing.T) {
	tests := []struct {
		name     string
		server   serverOptions
		mode     TLSMode
		host     string // SMTPHost when not 127.0.0.1; traffic still goes to the test server
		user     string
		pass     string
		wantMech string
		wantErr  string
		wantSeen bool // with wantErr: the server saw an AUTH attempt
	}{
		{
			name:   "PLAIN after STARTTLS to a remote host name",
			server: serverOptions{starttls: true, authMechs: []string{"PLAIN", "LOGIN"}, user: "bot", pass: "s3cret"},
			mode:   TLSStartTLS, host: "mail.example.org", user: "bot", pass: "s3cret", wantMech: "PLAIN",
		},
		{
			name:   "LOGIN when it is the only mechanism, over implicit TLS",
			server: serverOptions{implicitTLS: true, authMechs: []string{"LOGIN"}, user: "bot", pass: "pa ss:wörd"},
			mode:   TLSImplicit, host: "mail.example.org", user: "bot", pass: "pa ss:wörd", wantMech: "LOGIN",
		},
		{
			name:   "PLAIN in clear to a loopback address",
			server: serverOptions{authMechs: []string{"PLAIN"}, allowInsecureAuth: true, user: "bot", pass: "s3cret"},
			mode:   TLSNone, user: "bot", pass: "s3cret", wantMech: "PLAIN",
		},
		{
			name:   "LOGIN in clear to a loopback address",
			server: serverOptions{authMechs: []string{"LOGIN"}, allowInsecureAuth: true, user: "bot", pass: "s3cret"},
			mode:   TLSNone, user: "bot", pass: "s3cret", wantMech: "LOGIN",
		},
		{
			name:   "no password in clear to a remote host name",
			server: serverOptions{authMechs: []string{"PLAIN", "LOGIN"}, allowInsecureAuth: true, user: "bot", pass: "s3cret"},
			mode:   TLSOpportunistic, host: "mail.example.org", user: "bot", pass: "s3cret",
			wantErr: "refusing to send the SMTP password",
		},
		{
			name:   "wrong password",
			server: serverOptions{starttls: true, authMechs: []string{"PLAIN"}, user: "bot", pass: "s3cret"},
			mode:   TLSStartTLS, user: "bot", pass: "guess", wantErr: `AUTH as "bot"`, wantSeen: true,
		},
		{
			name:   "server without AUTH",
			server: serverOptions{starttls: true},
			mode:   TLSStartTLS, user: "bot", pass: "s3cret", wantErr: "does not offer AUTH",
		},
		{
			name:   "server with only unsupported mechanisms",
			server: serverOptions{starttls: true, authMechs: []string{"XOAUTH2"}},
			mode:   TLSStartTLS, user: "bot", pass: "s3cret", wantErr: "only PLAIN and LOGIN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, tt.server)
			cfg := srv.config(tt.mode)
			cfg.SMTPUser, cfg.SMTPPass = tt.user, tt.pass
			if tt.host != "" {
				cfg.dialAddr = net.JoinHostPort(cfg.SMTPHost, strconv.Itoa(cfg.SMTPPort))
				cfg.SMTPHost = tt.host
			}
			err := Send(testContext(t), cfg, Message{To: "alice@example.org", Subject: "s", Text: "t", HTML: "h"})
			msgs := srv.messages()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Send error = %v, want one containing %q", err, tt.wantErr)
				}
				if len(msgs) != 0 {
					t.Errorf("server received %d messages despite the error", len(msgs))
				}
				if seen := len(srv.auths()) > 0; seen != tt.wantSeen {
					t.Errorf("server saw an AUTH attempt = %v, want %v", seen, tt.wantSeen)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(msgs) != 1 {
				t.Fatalf("server received %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.authMech != tt.wantMech || m.user != tt.user || m.pass != tt.pass {
				t.Errorf("server authenticated %s %q/%q, want %s %q/%q", m.authMech, m.user, m.pass, tt.wantMech, tt.user, tt.pass)
			}
		})
	}
}

func TestSendHonoursContext(t *testing.T) {
	t.Run("deadline while the server says nothing", func(t *testing.T) {
		sl := startSilentListener(t)
		host, port := sl.hostPort(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := Send(ctx, Config{SMTPHost: host, SMTPPort: port, TLS: TLSNone, NotifFrom: "a@example.org"},
			Message{To: "b@example.org", Subject: "s", Text: "t", HTML: "h"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send error = %v, want context.DeadlineExceeded", err)
		}
		if sl.accepted() != 1 {
			t.Errorf("server accepted %d connections, want 1", sl.accepted())
		}
	})
	t.Run("deadline while the server holds DATA", func(t *testing.T) {
		srv := startServer(t, serverOptions{stallData: true})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := Send(ctx, srv.config(TLSNone), Message{To: "b@example.org", Subject: "s", Text: "t", HTML: "h"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send error = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("cancel without a deadline", func(t *testing.T) {
		sl := startSilentListener(t)
		host, port := sl.hostPort(t)
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(200*time.Millisecond, cancel)
		defer timer.Stop()
		err := Send(ctx, Config{SMTPHost: host, SMTPPort: port, TLS: TLSNone, NotifFrom: "a@example.org"},
			Message{To: "b@example.org", Subject: "s", Text: "t", HTML: "h"})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send error = %v, want context.Canceled", err)
		}
	})
}

func TestSendRefusesBadHeaders(t *testing.T) {
	good := Message{To: "alice@example.org", Subject: "Renew", Text: "t", HTML: "h"}
	tests := []struct {
		name      string
		notifFrom string
		msg       Message
		want      string
	}{
		{name: "LF in To", msg: Message{To: "alice@example.org\nBcc: eve@example.net"}, want: "To header: refusing a line break"},
		{name: "CRLF in To", msg: Message{To: "alice@example.org\r\nBcc: eve@example.net"}, want: "To header: refusing a line break"},
		{name: "CR in Subject", msg: Message{To: good.To, Subject: "Hi\rBcc: eve@example.net"}, want: "Subject header: refusing a line break"},
		{name: "LF in Subject", msg: Message{To: good.To, Subject: "Hi\nBcc: eve@example.net"}, want: "Subject header: refusing a line break"},
		{name: "NUL in Subject", msg: Message{To: good.To, Subject: "Hi\x00"}, want: "Subject header: refusing a NUL"},
		{name: "invalid UTF-8 in Subject", msg: Message{To: good.To, Subject: "Hi \xff"}, want: "not valid UTF-8"},
		{name: "LF in notif_from", notifFrom: "App <a@example.org>\nBcc: eve@example.net", msg: good, want: "email.notif_from: From header: refusing a line break"},
		{name: "To not an address", msg: Message{To: "alice"}, want: `To header: "alice" is not an email address`},
		{name: "two recipients", msg: Message{To: "alice@example.org, eve@example.net"}, want: "is not an email address"},
		{name: "empty To", msg: Message{}, want: "is not an email address"},
		{name: "notif_from not an address", notifFrom: "%(app)s", msg: good, want: "email.notif_from: \"Luahost Test\" is not an email address"},
		{name: "notif_from with an unknown placeholder", notifFrom: "%(server)s <a@example.org>", msg: good, want: "only %(app)s and %% may follow %"},
		{name: "notif_from missing", notifFrom: "-", msg: good, want: "email.notif_from is not set"},
	}
	sl := startSilentListener(t)
	host, port := sl.hostPort(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{SMTPHost: host, SMTPPort: port, TLS: TLSNone, AppName: "Luahost Test", NotifFrom: "%(app)s <noreply@example.org>"}
			switch tt.notifFrom {
			case "":
			case "-":
				cfg.NotifFrom = ""
			default:
				cfg.NotifFrom = tt.notifFrom
			}
			err := Send(testContext(t), cfg, tt.msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Send error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if n := sl.accepted(); n != 0 {
		t.Errorf("a refused message still opened %d connections to the server", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // every problem is reported; none: valid
	}{
		{name: "defaults with notif_from", cfg: Config{NotifFrom: "n@example.org"}},
		{name: "every mode", cfg: Config{NotifFrom: "n@example.org", TLS: TLSImplicit, SMTPPort: 465}},
		{name: "unknown mode and bad port", cfg: Config{NotifFrom: "n@example.org", TLS: "ssl", SMTPPort: 70000},
			want: []string{`email.tls: "ssl" is not one of none, starttls, opportunistic, tls`, "email.smtp_port: 70000 is not a port number"}},
		{name: "password without user", cfg: Config{NotifFrom: "n@example.org", SMTPPass: "x"},
			want: []string{"email.smtp_pass is set but email.smtp_user is empty"}},
		{name: "host with a line break", cfg: Config{NotifFrom: "n@example.org", SMTPHost: "mail\n.example.org"},
			want: []string{"email.smtp_host"}},
		{name: "no notif_from", cfg: Config{}, want: []string{"email.notif_from is not set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted the config, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNotifFromSubstitution(t *testing.T) {
	tests := []struct{ format, app, want string }{
		{"%(app)s <noreply@example.org>", "Element", "Element <noreply@example.org>"},
		{"\"%(app)s Notifications\" <n@example.org>", "Matrix", "\"Matrix Notifications\" <n@example.org>"},
		{"100%% <n@example.org>", "x", "100% <n@example.org>"},
		{"noreply@example.org", "x", "noreply@example.org"},
	}
	for _, tt := range tests {
		got, err := substituteApp(tt.format, tt.app)
		if err != nil || got != tt.want {
			t.Errorf("substituteApp(%q, %q) = %q, %v; want %q", tt.format, tt.app, got, err, tt.want)
		}
	}
}

func TestTLSModeFromSynapse(t *testing.T) {
	tests := []struct {
		force, require, enable bool
		want                   TLSMode
	}{
		{false, false, true, TLSOpportunistic}, // Synapse's defaults
		{false, false, false, TLSNone},
		{false, true, true, TLSStartTLS},
		{false, true, false, TLSStartTLS},
		{true, false, true, TLSImplicit},
		{true, true, false, TLSImplicit},
	}
	for _, tt := range tests {
		if got := TLSModeFromSynapse(tt.force, tt.require, tt.enable); got != tt.want {
			t.Errorf("TLSModeFromSynapse(force_tls=%v, require_transport_security=%v, enable_tls=%v) = %q, want %q",
				tt.force, tt.require, tt.enable, got, tt.want)
		}
	}
}

func TestFoldHeaderUnfoldsToTheSameValue(t *testing.T) {
	tests := []struct {
		value   string
		maxLine int // 0: a line may stay long (no space to fold at)
	}{
		{"short", 78},
		{strings.Repeat("word ", 40) + "end", 78},
		{strings.Repeat("x", 120) + " tail", 0},
		// An encoded-word (at most 75 characters, RFC 2047) cannot be cut,
		// so the first line may reach "Subject: " plus 75.
		{"=?utf-8?q?" + strings.Repeat("=C3=A9", 10) + "?= =?utf-8?q?" + strings.Repeat("a", 60) + "?= =?utf-8?q?b?=", 84},
	}
	for _, tt := range tests {
		folded := foldHeader("Subject: " + tt.value)
		msg, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(folded + "\r\n\r\n")))
		if err != nil {
			t.Fatalf("folded header does not parse: %v\n%s", err, folded)
		}
		if got := msg.Header.Get("Subject"); got != tt.value {
			t.Errorf("unfolded %q, want %q", got, tt.value)
		}
		lines := strings.Split(folded, "\r\n")
		for _, line := range lines {
			if tt.maxLine > 0 && len(line) > tt.maxLine {
				t.Errorf("line of %d characters, want at most %d: %q", len(line), tt.maxLine, line)
			}
		}
		if len(tt.value) > 78 && len(lines) < 2 {
			t.Errorf("a %d-character value was not folded", len(tt.value))
		}
	}
}
