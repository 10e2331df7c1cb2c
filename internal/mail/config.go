// Package mail sends the emails of api.send_mail: one multipart/alternative
// message (plain text and HTML) per call, over SMTP, with the homeserver's
// `email:` settings, as Synapse's ModuleApi.send_mail does.
//
// It uses only the standard library (net/smtp, crypto/tls, net/mail,
// mime/quotedprintable): embedders link no SMTP client dependency.
package mail

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// TLSMode says how the connection to the SMTP server is protected.
type TLSMode string

const (
	// TLSNone never encrypts, even when the server offers STARTTLS.
	TLSNone TLSMode = "none"
	// TLSStartTLS requires STARTTLS: a server that does not offer it is an error.
	TLSStartTLS TLSMode = "starttls"
	// TLSOpportunistic upgrades with STARTTLS when the server offers it and
	// sends in clear otherwise (Synapse's default, enable_tls: true).
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465;
	// Synapse's force_tls).
	TLSImplicit TLSMode = "tls"
)

// Defaults of the fields a config may leave empty, as in Synapse.
const (
	DefaultHost    = "localhost"
	DefaultPort    = 25
	DefaultAppName = "Matrix"
	DefaultTLSMode = TLSOpportunistic
)

// Config mirrors the top-level `email:` section of the config file. The
// SMTP keys keep Synapse's names so a Synapse email section carries over;
// `tls` replaces Synapse's three booleans (see TLSModeFromSynapse).
type Config struct {
	SMTPHost string `yaml:"smtp_host"` // default localhost
	SMTPPort int    `yaml:"smtp_port"` // default 25
	SMTPUser string `yaml:"smtp_user"` // no AUTH when empty
	SMTPPass string `yaml:"smtp_pass"`
	// TLS is none | starttls | opportunistic | tls; default opportunistic.
	TLS TLSMode `yaml:"tls"`
	// NotifFrom is the From header, e.g. "%(app)s <noreply@example.org>";
	// "%(app)s" is replaced with AppName and "%%" with "%", as in Synapse.
	NotifFrom string `yaml:"notif_from"`
	AppName   string `yaml:"app_name"` // default Matrix
	// TLSConfig, when set, is cloned for STARTTLS and implicit TLS (tests
	// put their self-signed CA in RootCAs). ServerName defaults to SMTPHost.
	TLSConfig *tls.Config `yaml:"-"`

	// dialAddr, when set by a test, replaces the address dialled (the
	// host name stays SMTPHost for TLS and AUTH checks), so a test can
	// name a non-loopback host while its traffic still goes to 127.0.0.1.
	dialAddr string
}

// TLSModeFromSynapse maps Synapse's email booleans onto a TLSMode:
// force_tls wins, then require_transport_security, then enable_tls.
func TLSModeFromSynapse(forceTLS, requireTransportSecurity, enableTLS bool) TLSMode {
	switch {
	case forceTLS:
		return TLSImplicit
	case requireTransportSecurity:
		return TLSStartTLS
	case enableTLS:
		return TLSOpportunistic
	default:
		return TLSNone
	}
}

// withDefaults returns c with the empty fields filled in.
func (c Config) withDefaults() Config {
	if c.SMTPHost == "" {
		c.SMTPHost = DefaultHost
	}
	if c.SMTPPort == 0 {
		c.SMTPPort = DefaultPort
	}
	if c.TLS == "" {
		c.TLS = DefaultTLSMode
	}
	if c.AppName == "" {
		c.AppName = DefaultAppName
	}
	return c
}

// Validate reports every problem of the config at once (after defaults), so
// a config check can show them before the first email is sent.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	switch c.TLS {
	case TLSNone, TLSStartTLS, TLSOpportunistic, TLSImplicit:
	default:
		errs = append(errs, fmt.Errorf("email.tls: %q is not one of none, starttls, opportunistic, tls", c.TLS))
	}
	if c.SMTPPort < 1 || c.SMTPPort > 65535 {
		errs = append(errs, fmt.Errorf("email.smtp_port: %d is not a port number", c.SMTPPort))
	}
	if strings.ContainsAny(c.SMTPHost, "\r\n \t/") {
		errs = append(errs, fmt.Errorf("email.smtp_host: %q is not a host name", c.SMTPHost))
	}
	if c.SMTPPass != "" && c.SMTPUser == "" {
		errs = append(errs, errors.New("email.smtp_pass is set but email.smtp_user is empty"))
	}
	if _, err := c.from(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// from parses NotifFrom after substituting the app name.
func (c Config) from() (*mail.Address, error) {
	if c.NotifFrom == "" {
		return nil, errors.New("email.notif_from is not set: it is the From address of every email")
	}
	s, err := substituteApp(c.NotifFrom, c.AppName)
	if err != nil {
		return nil, fmt.Errorf("email.notif_from: %w", err)
	}
	if err := checkHeaderValue("From", s); err != nil {
		return nil, fmt.Errorf("email.notif_from: %w", err)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("email.notif_from: %q is not an email address: %w", s, err)
	}
	return addr, nil
}

// substituteApp does what Python's `notif_from % {"app": app_name}` does for
// the only key Synapse provides: "%(app)s" becomes app, "%%" becomes "%";
// any other "%" is an error, as it would be in Synapse.
func substituteApp(format, app string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		rest := format[i:]
		switch {
		case strings.HasPrefix(rest, "%%"):
			b.WriteByte('%')
			i++
		case strings.HasPrefix(rest, "%(app)s"):
			b.WriteString(app)
			i += len("%(app)s") - 1
		default:
			return "", fmt.Errorf("%q: only %%(app)s and %%%% may follow %%", format)
		}
	}
	return b.String(), nil
}
