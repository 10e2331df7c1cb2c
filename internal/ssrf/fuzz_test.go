package ssrf

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// embeddedForms extracts, independently of the code under test, every IPv4
// address that an IPv6 address carries, with the form's name.
func embeddedForms(b [16]byte) map[string]netip.Addr {
	zero := func(s []byte) bool { return bytes.Count(s, []byte{0}) == len(s) }
	last := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	out := map[string]netip.Addr{}
	switch {
	case zero(b[:10]) && b[10] == 0xff && b[11] == 0xff:
		out["IPv4-mapped"] = last
	case zero(b[:8]) && b[8] == 0xff && b[9] == 0xff && zero(b[10:12]):
		out["SIIT"] = last
	case bytes.Equal(b[:4], []byte{0, 0x64, 0xff, 0x9b}) && zero(b[4:12]):
		out["NAT64"] = last
	case b[0] == 0x20 && b[1] == 0x02:
		out["6to4"] = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
	case bytes.Equal(b[:4], []byte{0x20, 0x01, 0, 0}):
		out["Teredo server"] = netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
		out["Teredo client"] = netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
	case zero(b[:12]) && !zero(b[12:15]) || zero(b[:12]) && b[15] > 1:
		out["IPv4-compatible"] = last
	}
	return out
}

// FuzzCheck: Check and Control never panic; an address that carries a
// refused IPv4 address is refused; an IPv4 address and its mapped form get
// the same answer, with or without an allowlist; an allowlisted address is
// allowed unless it has a zone; a refusal names the address; Control gives
// Check's answer and refuses what is not an IP address and port.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1}, "64:ff9b::7f00:1")
	f.Add([]byte{0xfe, 0x80, 15: 1}, "fe80::1%eth0")
	def := New(nil)
	allowed, _ := ParseAllowlist([]string{"10.0.0.0/8", "127.0.0.1", "::1", "64:ff9b::/96"})
	withAllow := New(allowed)
	localUse := netip.MustParsePrefix("64:ff9b:1::/48")

	f.Fuzz(func(t *testing.T, raw []byte, s string) {
		var b [16]byte
		copy(b[:], raw)
		a := netip.AddrFrom16(b)
		err := def.Check(a)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("Check(%s) = %v, not ErrRefused", a, err)
			}
			if !strings.Contains(err.Error(), a.String()) {
				t.Fatalf("Check(%s) = %q does not name the address", a, err)
			}
		}
		for form, v4 := range embeddedForms(b) {
			if def.Check(v4) != nil && err == nil {
				t.Fatalf("%s carries %s (%s), which is refused, but is allowed", a, v4, form)
			}
		}
		if localUse.Contains(a) && err == nil {
			t.Fatalf("%s (local-use NAT64) allowed", a)
		}

		v4 := netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
		mapped := netip.AddrFrom16(v4.As16())
		for _, p := range []*Policy{def, withAllow} {
			if e4, em := p.Check(v4), p.Check(mapped); (e4 == nil) != (em == nil) {
				t.Fatalf("%s: %v, but its mapped form %s: %v", v4, e4, mapped, em)
			}
		}

		if err := New([]netip.Prefix{netip.PrefixFrom(a, 128)}).Check(a); err != nil {
			t.Fatalf("%s allowlisted but refused: %v", a, err)
		}
		if err := New([]netip.Prefix{netip.PrefixFrom(v4, 32)}).Check(mapped); err != nil {
			t.Fatalf("%s allowlisted but its mapped form %s refused: %v", v4, mapped, err)
		}

		if pa, perr := netip.ParseAddr(s); perr == nil {
			ce := def.Check(pa)
			if pa.Zone() != "" && ce == nil {
				t.Fatalf("zoned %s allowed", pa)
			}
			if pa.Zone() != "" && New([]netip.Prefix{netip.PrefixFrom(pa.WithZone(""), pa.BitLen())}).Check(pa) == nil {
				t.Fatalf("zoned %s allowed by an allowlist", pa)
			}
			if xe := def.Control("tcp", netip.AddrPortFrom(pa, 443).String(), nil); (xe == nil) != (ce == nil) {
				t.Fatalf("Control(%s) = %v, Check = %v", pa, xe, ce)
			}
		}
		if _, perr := netip.ParseAddrPort(s); perr != nil {
			if err := def.Control("tcp", s, nil); !errors.Is(err, ErrRefused) {
				t.Fatalf("Control(%q) = %v, want refused", s, err)
			}
		}
		if ents, _ := ParseAllowlist([]string{s}); len(ents) > 0 {
			_ = New(ents).Check(a)
		}
	})
}
