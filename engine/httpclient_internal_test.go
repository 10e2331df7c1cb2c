package engine

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
)

func TestIPPolicy(t *testing.T) {
	def := parseAllowlist(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for addr, blocked := range map[string]bool{
		"127.0.0.1": true, "10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true,
		"100.64.0.1": true, "169.254.169.254": true, "0.0.0.0": true, "224.0.0.1": true,
		"255.255.255.255": true, "198.18.0.1": true, "::1": true, "::": true, "fe80::1": true,
		"fc00::1": true, "fd12::1": true, "ff02::1": true, "::ffff:127.0.0.1": true,
		"::ffff:10.0.0.1": true, "8.8.8.8": false, "1.1.1.1": false, "2001:4860:4860::8888": false,
	} {
		if err := def.check(netip.MustParseAddr(addr)); (err != nil) != blocked {
			t.Errorf("%s: err = %v, want blocked=%v", addr, err, blocked)
		}
	}
	p := parseAllowlist([]string{"10.0.0.0/8", "::ffff:127.0.0.0/104", "fd12::1", "not-a-cidr"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for addr, allowed := range map[string]bool{
		"10.9.9.9": true, "127.0.0.1": true, "fd12::1": true, "fd12::2": false, "192.168.0.1": false,
	} {
		if err := p.check(netip.MustParseAddr(addr)); (err == nil) != allowed {
			t.Errorf("allowlisted %s: err = %v, want allowed=%v", addr, err, allowed)
		}
	}
}
