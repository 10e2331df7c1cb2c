package engine_test

// A real SMTP server (github.com/emersion/go-smtp) on 127.0.0.1, started
// by a test, that keeps what it receives: api.send_mail's tests read the
// message back from it.

import (
	"io"
	"log"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

type smtpMessage struct {
	from, to string
	data     []byte
}

// parsed reads the message as a mail client would.
func (m smtpMessage) parsed(t *testing.T) *mail.Message {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(m.data)))
	if err != nil {
		t.Fatalf("the message is not RFC 5322: %v\n%s", err, m.data)
	}
	return msg
}

type smtpServer struct {
	port int
	mu   sync.Mutex
	msgs []smtpMessage
	got  chan struct{} // one value per message
}

func (s *smtpServer) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.msgs...)
}

// wait returns the first n messages, failing the test when they do not
// arrive within a generous bound (a hang, not a speed check).
func (s *smtpServer) wait(t *testing.T, n int) []smtpMessage {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for len(s.messages()) < n {
		select {
		case <-s.got:
		case <-timeout:
			t.Fatalf("%d of %d messages arrived", len(s.messages()), n)
		}
	}
	return s.messages()[:n]
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	srv := &smtpServer{got: make(chan struct{}, 100)}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: srv}, nil
	}))
	s.Domain = "localhost"
	s.ErrorLog = log.New(io.Discard, "", 0)
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.port = l.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return srv
}

type smtpSession struct {
	srv *smtpServer
	cur smtpMessage
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = to
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	s.srv.got <- struct{}{}
	return nil
}

func (s *smtpSession) Reset()        { s.cur = smtpMessage{} }
func (s *smtpSession) Logout() error { return nil }
