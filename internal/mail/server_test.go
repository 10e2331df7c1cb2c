package mail

// A real SMTP server (github.com/emersion/go-smtp) on 127.0.0.1, started by
// each test, that records what it received.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// received is one message as the server saw it.
type received struct {
	from, to string
	data     []byte
	tls      bool // the DATA command arrived over TLS
	authMech string
	user     string
	pass     string
}

type serverOptions struct {
	starttls          bool     // offer STARTTLS with the test certificate
	implicitTLS       bool     // TLS from the first byte (SMTPS)
	authMechs         []string // "PLAIN", "LOGIN"; none: no AUTH offered
	allowInsecureAuth bool     // offer AUTH without TLS
	user, pass        string   // the only credentials accepted
	stallData         bool     // never answer DATA (until the test ends)
}

type testServer struct {
	host string
	port int
	cert *testCert

	mu       sync.Mutex
	msgs     []received
	authSeen []received // every AUTH attempt, accepted or not
}

func (s *testServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *testServer) auths() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.authSeen...)
}

// config returns a Config that reaches this server, with the test CA trusted.
func (s *testServer) config(mode TLSMode) Config {
	return Config{
		SMTPHost:  s.host,
		SMTPPort:  s.port,
		TLS:       mode,
		NotifFrom: "%(app)s <noreply@example.org>",
		AppName:   "Luahost Test",
		TLSConfig: &tls.Config{RootCAs: s.cert.pool},
	}
}

func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	cert := newTestCert(t)
	ts := &testServer{host: "127.0.0.1", cert: cert}
	unblock := make(chan struct{})

	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: ts, conn: c, opts: opts, unblock: unblock}, nil
	})
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = opts.allowInsecureAuth
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert.cert}}
	if opts.starttls {
		srv.TLSConfig = serverTLS
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if opts.implicitTLS {
		l = tls.NewListener(l, serverTLS)
	}
	ts.port = l.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	// Cleanups run last-in first-out: release a stalled session, then
	// close the server and wait for Serve to return.
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	t.Cleanup(func() { close(unblock) })
	return ts
}

type session struct {
	srv     *testServer
	conn    *smtp.Conn
	opts    serverOptions
	unblock chan struct{}
	cur     received
}

func (s *session) AuthMechanisms() []string { return s.opts.authMechs }

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		s.srv.mu.Lock()
		s.srv.authSeen = append(s.srv.authSeen, received{authMech: mech, user: user, pass: pass})
		s.srv.mu.Unlock()
		if user != s.opts.user || pass != s.opts.pass {
			return errors.New("invalid credentials")
		}
		s.cur.authMech, s.cur.user, s.cur.pass = mech, user, pass
		return nil
	}
	switch mech {
	case "PLAIN":
		return sasl.NewPlainServer(func(identity, user, pass string) error { return check(user, pass) }), nil
	case "LOGIN":
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = to
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.opts.stallData {
		<-s.unblock
		return errors.New("stalled")
	}
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.cur.data = data
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset() {
	auth := received{authMech: s.cur.authMech, user: s.cur.user, pass: s.cur.pass}
	s.cur = auth
}

func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(response) > 0 { // initial response carries the user name
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(response)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN step")
}

// testCert is a self-signed certificate for 127.0.0.1, localhost and
// mail.example.org, and a pool that trusts it.
type testCert struct {
	cert tls.Certificate
	pool *x509.CertPool
}

func newTestCert(t *testing.T) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "luahost test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", "mail.example.org"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &testCert{
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		pool: pool,
	}
}

// silentListener accepts connections and never says anything: a stalled
// server. It counts the connections it accepted.
type silentListener struct {
	addr  string
	mu    sync.Mutex
	count int
}

func startSilentListener(t *testing.T) *silentListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	sl := &silentListener{addr: l.Addr().String()}
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			sl.mu.Lock()
			sl.count++
			conns = append(conns, c)
			sl.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return sl
}

func (sl *silentListener) accepted() int {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.count
}

func (sl *silentListener) hostPort(t *testing.T) (string, int) {
	host, port, err := net.SplitHostPort(sl.addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}
