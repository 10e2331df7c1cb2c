package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds a send whose context has no deadline, so a stalled
// server cannot hold a caller forever.
const DefaultTimeout = 2 * time.Minute

// Send delivers m to its one recipient through the SMTP server of cfg.
//
// ctx bounds everything: the dial and the whole SMTP conversation (its
// deadline becomes the connection's deadline, and cancelling it closes the
// connection). Header values with CR or LF, and addresses net/mail cannot
// parse, are refused before anything is dialled. Credentials are sent only
// over TLS (STARTTLS or implicit) or to a loopback host.
//
// Send is safe for concurrent use; each call has its own connection.
func Send(ctx context.Context, cfg Config, m Message) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	from, err := cfg.from()
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	to, err := parseRecipient(m.To)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	data, err := buildMessage(from, to, m, time.Now())
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	server := net.JoinHostPort(cfg.SMTPHost, strconv.Itoa(cfg.SMTPPort))
	if err := converse(ctx, cfg, from.Address, to.Address, data); err != nil {
		// A conversation cut short by ctx reports ctx's error, not the
		// "i/o timeout" or "use of closed network connection" it caused.
		// The connection's deadline is ctx's, so after a timeout ctx is
		// done at once (its timer may just not have fired yet).
		if errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("send mail via %s: %w (%v)", server, ctxErr, err)
		}
		return fmt.Errorf("send mail via %s: %w", server, err)
	}
	return nil
}

// converse dials and runs one SMTP transaction.
func converse(ctx context.Context, cfg Config, from, to string, data []byte) error {
	addr := net.JoinHostPort(cfg.SMTPHost, strconv.Itoa(cfg.SMTPPort))
	if cfg.dialAddr != "" {
		addr = cfg.dialAddr
	}
	tlsConf := tlsConfig(cfg)

	var conn net.Conn
	var err error
	dialer := &net.Dialer{}
	if cfg.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: tlsConf}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	// The deadline covers reads and writes of the whole conversation; the
	// AfterFunc also ends it when ctx is cancelled without a deadline.
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("set deadline: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, cfg.SMTPHost)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}

	if cfg.TLS == TLSStartTLS || cfg.TLS == TLSOpportunistic {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConf); err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
		} else if cfg.TLS == TLSStartTLS {
			return fmt.Errorf("the server does not offer STARTTLS, which email.tls: starttls requires " +
				"(use tls for implicit TLS on port 465, or opportunistic to send in clear when STARTTLS is missing)")
		}
	}

	if cfg.SMTPUser != "" {
		if err := authenticate(c, cfg); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", from, err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT TO:<%s>: %w", to, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of message: %w", err)
	}
	// The server accepted the message at the end of DATA; a failed QUIT
	// does not unsend it.
	_ = c.Quit()
	return nil
}

func tlsConfig(cfg Config) *tls.Config {
	var conf *tls.Config
	if cfg.TLSConfig != nil {
		conf = cfg.TLSConfig.Clone()
	} else {
		conf = &tls.Config{}
	}
	if conf.ServerName == "" {
		conf.ServerName = cfg.SMTPHost
	}
	if conf.MinVersion == 0 {
		conf.MinVersion = tls.VersionTLS12
	}
	return conf
}

// authenticate runs AUTH PLAIN, or LOGIN when the server offers only that,
// after checking the connection may carry a password.
func authenticate(c *smtp.Client, cfg Config) error {
	_, isTLS := c.TLSConnectionState()
	if !isTLS && !isLoopbackHost(cfg.SMTPHost) {
		return fmt.Errorf("refusing to send the SMTP password for %q over an unencrypted connection to %s: "+
			"set email.tls to starttls or tls (or let opportunistic find STARTTLS)", cfg.SMTPUser, cfg.SMTPHost)
	}
	ok, params := c.Extension("AUTH")
	if !ok {
		return errors.New("email.smtp_user is set but the server does not offer AUTH")
	}
	mechs := strings.Fields(strings.ToUpper(params))
	var auth smtp.Auth
	switch {
	case contains(mechs, "PLAIN"):
		auth = smtp.PlainAuth("", cfg.SMTPUser, cfg.SMTPPass, cfg.SMTPHost)
	case contains(mechs, "LOGIN"):
		auth = &loginAuth{user: cfg.SMTPUser, pass: cfg.SMTPPass}
	default:
		return fmt.Errorf("the server offers AUTH %s; only PLAIN and LOGIN are supported", params)
	}
	if err := c.Auth(auth); err != nil {
		return fmt.Errorf("AUTH as %q: %w", cfg.SMTPUser, err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isLoopbackHost reports whether host names this machine, where a password
// in clear crosses no network.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loginAuth is the LOGIN mechanism (draft-murchison-sasl-login), which
// net/smtp lacks: the server asks for the user name, then the password.
// authenticate has already checked the connection is TLS or loopback.
type loginAuth struct {
	user, pass string
	step       int
}

func (a *loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.pass), nil
	default:
		return nil, fmt.Errorf("unexpected LOGIN challenge %q", challenge)
	}
}
