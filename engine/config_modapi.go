package engine

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/luahost/luahost/internal/mail"
)

// The config keys of the ModuleApi members a port of a real Synapse module
// needs: the top-level email:, public_baseurl: and instance_name:, and a
// module entry's store_namespace: and background_timeout:. They live here,
// apart from config.go's core keys.

// DefaultBackgroundTimeout bounds a background call (a timer's run,
// api.run_as_background_process) unless a module sets background_timeout.
const DefaultBackgroundTimeout = 10 * time.Minute

// EmailConfig is the top-level `email:` section: how api.send_mail reaches
// an SMTP server. The keys are Synapse's (smtp_host, smtp_port, smtp_user,
// smtp_pass, notif_from, app_name); `tls` is one of none, starttls,
// opportunistic (the default) or tls, and Synapse's enable_tls,
// require_transport_security and force_tls are read into it.
type EmailConfig struct {
	SMTPHost  string // default localhost
	SMTPPort  int    // default 25
	SMTPUser  string // no AUTH when empty
	SMTPPass  string
	TLS       string // none | starttls | opportunistic | tls
	NotifFrom string // the From header; "%(app)s" is replaced with AppName
	AppName   string // default Matrix
	// TLSConfig, when an embedder sets it, is used for STARTTLS and
	// implicit TLS (for a private CA); nil uses the system roots.
	TLSConfig *tls.Config
	// Line is the line of the email: key.
	Line int
}

// mailConfig is the internal/mail form of c.
func (c *EmailConfig) mailConfig() mail.Config {
	return mail.Config{SMTPHost: c.SMTPHost, SMTPPort: c.SMTPPort, SMTPUser: c.SMTPUser, SMTPPass: c.SMTPPass,
		TLS: mail.TLSMode(c.TLS), NotifFrom: c.NotifFrom, AppName: c.AppName, TLSConfig: c.TLSConfig}
}

// appName is email.app_name or its default, as api.email_app_name gives it.
func (c *EmailConfig) appName() string {
	if c == nil || c.AppName == "" {
		return mail.DefaultAppName
	}
	return c.AppName
}

var emailKeys = []string{"smtp_host", "smtp_port", "smtp_user", "smtp_pass", "tls", "notif_from", "app_name",
	"enable_tls", "require_transport_security", "force_tls"}

// parseModAPIKey reads one of the top-level keys email, public_baseurl and
// instance_name.
func parseModAPIKey(cfg *Config, key string, v *yaml.Node, fail func(*yaml.Node, string, ...any)) {
	switch key {
	case "email":
		cfg.Email = parseEmail(v, fail)
	case "public_baseurl":
		s := scalar(v, fail, "public_baseurl")
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			fail(v, "public_baseurl %q must be an http or https URL like https://matrix.example.org/", s)
			return
		}
		if !strings.HasSuffix(s, "/") {
			s += "/" // as Synapse does
		}
		cfg.PublicBaseURL = s
	case "instance_name":
		s := scalar(v, fail, "instance_name")
		if !validName.MatchString(s) {
			fail(v, "instance_name %q may only contain letters, digits, '_', '-' and '.'", s)
			return
		}
		cfg.InstanceName = s
	}
}

func parseEmail(n *yaml.Node, fail func(*yaml.Node, string, ...any)) *EmailConfig {
	ec := &EmailConfig{Line: n.Line}
	var tlsNode *yaml.Node
	synapseTLS := map[string]bool{}
	var synapseNode *yaml.Node
	bad := false
	failE := func(node *yaml.Node, format string, args ...any) {
		bad = true
		fail(node, format, args...)
	}
	forEachKey(n, failE, "email", emailKeys, func(k string, v *yaml.Node) {
		switch k {
		case "smtp_host":
			ec.SMTPHost = scalar(v, failE, "email.smtp_host")
		case "smtp_port":
			s := scalar(v, failE, "email.smtp_port")
			p, err := strconv.Atoi(s)
			if err != nil || p < 1 || p > 65535 {
				failE(v, "email.smtp_port %q is not a port number (1 to 65535)", s)
				return
			}
			ec.SMTPPort = p
		case "smtp_user":
			ec.SMTPUser = scalar(v, failE, "email.smtp_user")
		case "smtp_pass":
			ec.SMTPPass = scalar(v, failE, "email.smtp_pass")
		case "tls":
			tlsNode = v
			ec.TLS = scalar(v, failE, "email.tls")
		case "notif_from":
			ec.NotifFrom = scalar(v, failE, "email.notif_from")
		case "app_name":
			ec.AppName = scalar(v, failE, "email.app_name")
		case "enable_tls", "require_transport_security", "force_tls":
			var b bool
			if err := v.Decode(&b); err != nil {
				failE(v, "email.%s must be true or false", k)
				return
			}
			synapseTLS[k] = b
			synapseNode = v
		}
	})
	if synapseNode != nil {
		if tlsNode != nil {
			failE(synapseNode, "email: give either tls: (none, starttls, opportunistic, tls) or Synapse's enable_tls/require_transport_security/force_tls, not both")
		} else {
			enable, set := synapseTLS["enable_tls"]
			if !set {
				enable = true // Synapse's default
			}
			ec.TLS = string(mail.TLSModeFromSynapse(synapseTLS["force_tls"], synapseTLS["require_transport_security"], enable))
		}
	}
	if bad {
		return ec
	}
	if err := ec.mailConfig().Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fail(n, "%s", line)
		}
	}
	return ec
}

// parseModAPIModuleKey reads a module entry's store_namespace or
// background_timeout.
func parseModAPIModuleKey(m *ModuleConfig, key string, v *yaml.Node, fail func(*yaml.Node, string, ...any)) {
	switch key {
	case "store_namespace":
		s := scalar(v, fail, "store_namespace")
		if !validName.MatchString(s) {
			fail(v, "store_namespace %q may only contain letters, digits, '_', '-' and '.', like a module name", s)
			return
		}
		m.StoreNamespace = s
	case "background_timeout":
		s := scalar(v, fail, "background_timeout")
		if isZeroDuration(s) {
			m.BackgroundTimeout = 0
			return
		}
		d, err := parseDuration(s, maxTimeout)
		if err != nil {
			fail(v, "background_timeout: %v (or 0: until the module is reloaded or stopped)", err)
			return
		}
		m.BackgroundTimeout = d
	}
}

// isZeroDuration reports whether s is 0 as a duration ("0", "0s", "0.0").
func isZeroDuration(s string) bool {
	if d, err := time.ParseDuration(s); err == nil {
		return d == 0
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f == 0
}

// backgroundDeadline is the runtime timeout of one background call: the
// module's background_timeout, or, for 0, one long enough never to come
// (the call ends with the generation instead).
func backgroundDeadline(d time.Duration) time.Duration {
	if d <= 0 {
		return 100 * 365 * 24 * time.Hour
	}
	return d
}

// publicBaseURL is api.public_baseurl: the config's, or Synapse's default
// https://<server_name>/.
func (c *Config) publicBaseURL() string {
	if c.PublicBaseURL != "" {
		return c.PublicBaseURL
	}
	return fmt.Sprintf("https://%s/", c.ServerName)
}
