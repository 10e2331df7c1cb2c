package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is one email: a single recipient, as in Synapse's
// send_mail(recipient, subject, html, text).
type Message struct {
	To      string // an address, optionally with a display name
	Subject string
	HTML    string
	Text    string
}

// checkHeaderValue refuses what would let a value end its header and start
// another one (header injection) or break the message's syntax.
func checkHeaderValue(name, v string) error {
	if i := strings.IndexAny(v, "\r\n"); i >= 0 {
		return fmt.Errorf("%s header: refusing a line break (CR or LF) in %q", name, v)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%s header: refusing a NUL byte in %q", name, v)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s header: %q is not valid UTF-8", name, v)
	}
	return nil
}

// parseRecipient checks and parses Message.To.
func parseRecipient(to string) (*mail.Address, error) {
	if err := checkHeaderValue("To", to); err != nil {
		return nil, err
	}
	addr, err := mail.ParseAddress(to)
	if err != nil {
		return nil, fmt.Errorf("To header: %q is not an email address: %w", to, err)
	}
	return addr, nil
}

// randomToken returns n random bytes as hex, for boundaries and Message-IDs.
func randomToken(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error (it crashes the program
	// instead on the platforms where it could fail).
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// buildMessage renders the RFC 5322 message: headers, then a
// multipart/alternative body with the text part first and the HTML part last
// (the last part is the preferred one), both quoted-printable UTF-8.
func buildMessage(from, to *mail.Address, m Message, now time.Time) ([]byte, error) {
	if err := checkHeaderValue("Subject", m.Subject); err != nil {
		return nil, err
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	// A boundary that cannot occur in quoted-printable output ("=_" is not a
	// valid QP sequence), so no part can end the multipart early.
	if err := mw.SetBoundary("=_" + randomToken(16)); err != nil {
		return nil, fmt.Errorf("multipart boundary: %w", err)
	}
	for _, p := range []struct{ ctype, content string }{
		{"text/plain; charset=utf-8", m.Text},
		{"text/html; charset=utf-8", m.HTML},
	} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.ctype},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, fmt.Errorf("create %s part: %w", p.ctype, err)
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(p.content)); err != nil {
			return nil, fmt.Errorf("encode %s part: %w", p.ctype, err)
		}
		if err := qp.Close(); err != nil {
			return nil, fmt.Errorf("encode %s part: %w", p.ctype, err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("close multipart body: %w", err)
	}

	var msg bytes.Buffer
	header := func(name, value string) {
		msg.WriteString(foldHeader(name + ": " + value))
		msg.WriteString("\r\n")
	}
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+randomToken(16)+"@"+domain+">")
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("MIME-Version", "1.0")
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	msg.WriteString("\r\n")
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

// foldHeader folds a header line at spaces so lines stay near 78 characters
// (RFC 5322 2.1.1); unfolding restores the value exactly, because a fold is a
// CRLF inserted before an existing space. A line with no space to fold at
// stays long (still far below the hard limit of 998 for any sane subject).
func foldHeader(line string) string {
	const limit = 78
	if len(line) <= limit {
		return line
	}
	var b strings.Builder
	// The first line keeps "Name: " and the first word together; a
	// continuation line starts with its space and is never cut there.
	lo := strings.IndexByte(line, ':') + 2
	for len(line) > limit {
		cut := -1
		if lo <= limit {
			if i := strings.LastIndexByte(line[lo:limit+1], ' '); i >= 0 {
				cut = lo + i
			}
		}
		if cut < 0 {
			from := max(lo, limit+1)
			i := strings.IndexByte(line[from:], ' ')
			if i < 0 {
				break
			}
			cut = from + i
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n")
		line = line[cut:]
		lo = 1
	}
	b.WriteString(line)
	return b.String()
}
