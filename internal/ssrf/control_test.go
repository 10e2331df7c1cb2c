package ssrf

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A real net.Dialer with the Control hook, dialling only loopback: refused
// unless allowlisted, and the refused dial never reaches the listener.
func TestControlDialsLoopback(t *testing.T) {
	for _, tc := range []struct {
		network, listen, host, block string
	}{
		{"tcp4", "127.0.0.1:0", "127.0.0.1", "127.0.0.1 is in 127.0.0.0/8 (Loopback)"},
		{"tcp6", "[::1]:0", "::1", "::1 is in ::1/128 (Loopback Address)"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.listen)
			if err != nil {
				if tc.network == "tcp6" {
					t.Skipf("this machine has no IPv6 loopback to listen on: %v", err)
				}
				t.Fatal(err)
			}
			defer ln.Close()
			// Each accepted connection reports what its dialler wrote.
			got := make(chan string, 8)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					b, _ := io.ReadAll(io.LimitReader(c, 64))
					c.Close()
					got <- string(b)
				}
			}()
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			addr := net.JoinHostPort(tc.host, port)

			dialNet := func(network string, allow []string, target string) (net.Conn, error) {
				pfx, errs := ParseAllowlist(allow)
				if len(errs) > 0 {
					t.Fatal(errs)
				}
				d := net.Dialer{Timeout: 10 * time.Second, Control: New(pfx).Control}
				return d.Dial(network, target)
			}
			dial := func(allow []string, target string) (net.Conn, error) {
				return dialNet(tc.network, allow, target)
			}
			refused := func(allow []string, target, want string) {
				t.Helper()
				c, err := dial(allow, target)
				if err == nil {
					c.Close()
					t.Fatalf("allow %v: dial %s connected, want refused", allow, target)
				}
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
					t.Fatalf("allow %v: dial %s: %v, want ErrRefused saying %q", allow, target, err, want)
				}
			}

			refused(nil, addr, tc.block)
			// After name resolution too, whichever family localhost has here.
			if c, err := dialNet("tcp", nil, net.JoinHostPort("localhost", port)); err == nil {
				c.Close()
				t.Fatal("dial localhost connected, want refused")
			} else if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "Loopback") {
				t.Fatalf("dial localhost: %v, want a loopback refusal", err)
			}
			other := "::1"
			if tc.host == "::1" {
				other = "127.0.0.0/8"
			}
			refused([]string{other}, addr, tc.block) // the other family's loopback allows nothing here

			c, err := dial([]string{tc.host}, addr)
			if err != nil {
				t.Fatalf("allowlisted %s: %v", tc.host, err)
			}
			if _, err := io.WriteString(c, "allowed"); err != nil {
				t.Fatal(err)
			}
			c.Close()
			// Had a refused dial connected, its empty connection would
			// have been accepted first.
			select {
			case s := <-got:
				if s != "allowed" {
					t.Fatalf("first connection accepted wrote %q: a refused dial reached the listener", s)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the allowlisted connection never arrived")
			}
		})
	}
}

func TestControlRefusesWhatIsNotAnIPAddress(t *testing.T) {
	p := New(nil)
	for _, tc := range []struct{ network, address string }{
		{"unix", "/run/luahost.sock"},
		{"tcp", "localhost:80"},
		{"tcp", "127.0.0.1"},
		{"tcp", ""},
	} {
		if err := p.Control(tc.network, tc.address, nil); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not an IP address and port") {
			t.Errorf("Control(%q, %q) = %v, want refused", tc.network, tc.address, err)
		}
	}
	if err := p.Control("tcp6", "[fe80::1%eth0]:443", nil); err == nil || !strings.Contains(err.Error(), "zone-scoped") {
		t.Errorf("Control with a zone = %v, want refused", err)
	}
	if err := p.Control("tcp4", "8.8.8.8:443", nil); err != nil {
		t.Errorf("Control(8.8.8.8:443) = %v, want allowed (nothing is dialled)", err)
	}
}
