package ssrf

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// An empty want means allowed; otherwise the exact refusal message.
var checkCases = []struct {
	addr string
	want string
}{
	// Public addresses.
	{"8.8.8.8", ""},
	{"1.1.1.1", ""},
	{"2606:4700:4700::1111", ""},
	{"2001:4860:4860::8888", ""},
	{"::ffff:8.8.8.8", ""},

	// IPv4 blocks the registry marks not globally reachable.
	{"0.0.0.0", "0.0.0.0 is in 0.0.0.0/32 (This host on this network)"},
	{"0.1.2.3", "0.1.2.3 is in 0.0.0.0/8 (This network)"},
	{"10.1.2.3", "10.1.2.3 is in 10.0.0.0/8 (Private-Use)"},
	{"100.64.0.1", "100.64.0.1 is in 100.64.0.0/10 (Shared Address Space)"},
	{"100.127.255.255", "100.127.255.255 is in 100.64.0.0/10 (Shared Address Space)"},
	{"127.0.0.1", "127.0.0.1 is in 127.0.0.0/8 (Loopback)"},
	{"127.255.255.254", "127.255.255.254 is in 127.0.0.0/8 (Loopback)"},
	{"169.254.169.254", "169.254.169.254 is in 169.254.0.0/16 (Link Local)"},
	{"172.16.0.1", "172.16.0.1 is in 172.16.0.0/12 (Private-Use)"},
	{"172.31.255.255", "172.31.255.255 is in 172.16.0.0/12 (Private-Use)"},
	{"192.0.0.1", "192.0.0.1 is in 192.0.0.0/29 (IPv4 Service Continuity Prefix)"},
	{"192.0.0.8", "192.0.0.8 is in 192.0.0.8/32 (IPv4 dummy address)"},
	{"192.0.0.170", "192.0.0.170 is in 192.0.0.170/32 (NAT64/DNS64 Discovery)"},
	{"192.0.0.200", "192.0.0.200 is in 192.0.0.0/24 (IETF Protocol Assignments)"},
	{"192.0.2.1", "192.0.2.1 is in 192.0.2.0/24 (Documentation (TEST-NET-1))"},
	{"192.88.99.1", "192.88.99.1 is in 192.88.99.0/24 (Deprecated (6to4 Relay Anycast))"},
	{"192.88.99.2", "192.88.99.2 is in 192.88.99.2/32 (6a44-relay anycast address)"},
	{"192.168.1.1", "192.168.1.1 is in 192.168.0.0/16 (Private-Use)"},
	{"198.18.0.1", "198.18.0.1 is in 198.18.0.0/15 (Benchmarking)"},
	{"198.19.255.255", "198.19.255.255 is in 198.18.0.0/15 (Benchmarking)"},
	{"198.51.100.7", "198.51.100.7 is in 198.51.100.0/24 (Documentation (TEST-NET-2))"},
	{"203.0.113.9", "203.0.113.9 is in 203.0.113.0/24 (Documentation (TEST-NET-3))"},
	{"240.0.0.1", "240.0.0.1 is in 240.0.0.0/4 (Reserved)"},
	{"255.255.255.254", "255.255.255.254 is in 240.0.0.0/4 (Reserved)"},
	{"255.255.255.255", "255.255.255.255 is in 255.255.255.255/32 (Limited Broadcast)"},
	// Beyond the registry.
	{"224.0.0.1", "224.0.0.1 is in 224.0.0.0/4 (Multicast)"},
	{"239.255.255.250", "239.255.255.250 is in 224.0.0.0/4 (Multicast)"},
	{"192.0.0.9", "192.0.0.9 is in 192.0.0.0/24 (IETF Protocol Assignments, refused whole as in Synapse's default ip_range_blocklist)"},
	{"192.0.0.10", "192.0.0.10 is in 192.0.0.0/24 (IETF Protocol Assignments, refused whole as in Synapse's default ip_range_blocklist)"},
	// Reachable registry rows.
	{"192.31.196.1", ""},
	{"192.52.193.1", ""},
	{"192.175.48.1", ""},
	// Just outside refused blocks.
	{"100.63.255.255", ""},
	{"100.128.0.0", ""},
	{"172.15.255.255", ""},
	{"172.32.0.0", ""},
	{"198.17.255.255", ""},
	{"198.20.0.0", ""},
	{"223.255.255.255", ""},

	// IPv6 blocks the registry marks not globally reachable.
	{"::", ":: is in ::/128 (Unspecified Address)"},
	{"::1", "::1 is in ::1/128 (Loopback Address)"},
	{"64:ff9b:1::1", "64:ff9b:1::1 is in 64:ff9b:1::/48 (IPv4-IPv6 Translat.)"},
	{"64:ff9b:1::808:808", "64:ff9b:1::808:808 is in 64:ff9b:1::/48 (IPv4-IPv6 Translat.)"},
	{"100::1", "100::1 is in 100::/64 (Discard-Only Address Block)"},
	{"100:0:0:1::1", "100:0:0:1::1 is in 100:0:0:1::/64 (Dummy IPv6 Prefix)"},
	{"2001:5::1", "2001:5::1 is in 2001::/23 (IETF Protocol Assignments)"},
	{"2001:1::4", "2001:1::4 is in 2001::/23 (IETF Protocol Assignments)"},
	{"2001:1ff:ffff::1", "2001:1ff:ffff::1 is in 2001::/23 (IETF Protocol Assignments)"},
	{"2001:2::1", "2001:2::1 is in 2001:2::/48 (Benchmarking)"},
	{"2001:10::1", "2001:10::1 is in 2001:10::/28 (Deprecated (previously ORCHID))"},
	{"2001:db8::1", "2001:db8::1 is in 2001:db8::/32 (Documentation)"},
	{"3fff::1", "3fff::1 is in 3fff::/20 (Documentation)"},
	{"3fff:fff::1", "3fff:fff::1 is in 3fff::/20 (Documentation)"},
	{"5f00::1", "5f00::1 is in 5f00::/16 (Segment Routing (SRv6) SIDs)"},
	{"fc00::1", "fc00::1 is in fc00::/7 (Unique-Local)"},
	{"fd12:3456::1", "fd12:3456::1 is in fc00::/7 (Unique-Local)"},
	{"fe80::1", "fe80::1 is in fe80::/10 (Link-Local Unicast)"},
	{"febf::1", "febf::1 is in fe80::/10 (Link-Local Unicast)"},
	// Beyond the registry.
	{"fec0::1", "fec0::1 is in fec0::/10 (Site-Local, deprecated)"},
	{"ff02::1", "ff02::1 is in ff00::/8 (Multicast)"},
	{"ff0e::1", "ff0e::1 is in ff00::/8 (Multicast)"},
	{"4000::1", "4000::1 is outside 2000::/3, the IPv6 global unicast space"},
	{"1::1", "1::1 is outside 2000::/3, the IPv6 global unicast space"},
	{"::2:0:0:1", "::2:0:0:1 is outside 2000::/3, the IPv6 global unicast space"},
	// Reachable registry rows inside 2001::/23 and elsewhere.
	{"2001:1::1", ""},
	{"2001:1::2", ""},
	{"2001:1::3", ""},
	{"2001:3::1", ""},
	{"2001:4:112::1", ""},
	{"2001:20::1", ""},
	{"2001:30::1", ""},
	{"2620:4f:8000::1", ""},
	{"3fff:1000::1", ""},
	{"2001:200::1", ""},

	// IPv4 carried in IPv6: judged by the IPv4 address.
	{"::ffff:127.0.0.1", "::ffff:127.0.0.1 embeds 127.0.0.1 (IPv4-mapped), which is in 127.0.0.0/8 (Loopback)"},
	{"::ffff:7f00:1", "::ffff:127.0.0.1 embeds 127.0.0.1 (IPv4-mapped), which is in 127.0.0.0/8 (Loopback)"},
	{"::ffff:169.254.169.254", "::ffff:169.254.169.254 embeds 169.254.169.254 (IPv4-mapped), which is in 169.254.0.0/16 (Link Local)"},
	{"64:ff9b::7f00:1", "64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64), which is in 127.0.0.0/8 (Loopback)"},
	{"64:ff9b::10.0.0.1", "64:ff9b::a00:1 embeds 10.0.0.1 (NAT64), which is in 10.0.0.0/8 (Private-Use)"},
	{"64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe embeds 169.254.169.254 (NAT64), which is in 169.254.0.0/16 (Link Local)"},
	{"64:ff9b::", "64:ff9b:: embeds 0.0.0.0 (NAT64), which is in 0.0.0.0/32 (This host on this network)"},
	{"64:ff9b::808:808", ""},
	{"2002:7f00:1::", "2002:7f00:1:: embeds 127.0.0.1 (6to4), which is in 127.0.0.0/8 (Loopback)"},
	{"2002:a00:1:1:2:3:4:5", "2002:a00:1:1:2:3:4:5 embeds 10.0.0.1 (6to4), which is in 10.0.0.0/8 (Private-Use)"},
	{"2002:c000:201::1", "2002:c000:201::1 embeds 192.0.2.1 (6to4), which is in 192.0.2.0/24 (Documentation (TEST-NET-1))"},
	{"2002:808:808::1", ""},
	{"::ffff:0:7f00:1", "::ffff:0:7f00:1 embeds 127.0.0.1 (SIIT), which is in 127.0.0.0/8 (Loopback)"},
	{"::ffff:0:a00:1", "::ffff:0:a00:1 embeds 10.0.0.1 (SIIT), which is in 10.0.0.0/8 (Private-Use)"},
	{"::ffff:0:808:808", "::ffff:0:808:808 is in ::ffff:0:0:0/96 (SIIT IPv4-translated, obsolete)"},
	{"::127.0.0.1", "::7f00:1 embeds 127.0.0.1 (IPv4-compatible), which is in 127.0.0.0/8 (Loopback)"},
	{"::2", "::2 embeds 0.0.0.2 (IPv4-compatible), which is in 0.0.0.0/8 (This network)"},
	{"::8.8.8.8", "::808:808 is in ::/96 (IPv4-compatible, deprecated)"},
	// Teredo: server at bits 32-64, client at the last 32 bits inverted.
	{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", "2001:0:4136:e378:8000:63bf:f7f7:f7f7 is in 2001::/32 (TEREDO): Teredo addresses are refused whatever they embed"},
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:4136:e378:8000:63bf:3fff:fdd2 embeds 192.0.2.45 (Teredo client), which is in 192.0.2.0/24 (Documentation (TEST-NET-1))"},
	{"2001:0:7f00:1::", "2001:0:7f00:1:: embeds 127.0.0.1 (Teredo server), which is in 127.0.0.0/8 (Loopback)"},
	{"2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:0:4136:e378:8000:63bf:80ff:fffe embeds 127.0.0.1 (Teredo client), which is in 127.0.0.0/8 (Loopback)"},
	{"2001:0:4136:e378:8000:63bf:f5ff:fffe", "2001:0:4136:e378:8000:63bf:f5ff:fffe embeds 10.0.0.1 (Teredo client), which is in 10.0.0.0/8 (Private-Use)"},

	// Zones.
	{"fe80::1%eth0", "fe80::1%eth0 is zone-scoped (%eth0): zone-scoped addresses are refused"},
	{"2001:4860:4860::8888%eth0", "2001:4860:4860::8888%eth0 is zone-scoped (%eth0): zone-scoped addresses are refused"},
	{"::ffff:8.8.8.8%1", "::ffff:8.8.8.8%1 is zone-scoped (%1): zone-scoped addresses are refused"},
}

func TestCheck(t *testing.T) {
	p := New(nil)
	for _, tc := range checkCases {
		a := netip.MustParseAddr(tc.addr)
		err := p.Check(a)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Check(%s) = %v, want allowed", tc.addr, err)
		case tc.want != "" && err == nil:
			t.Errorf("Check(%s) allowed, want %q", tc.addr, tc.want)
		case tc.want != "" && err.Error() != tc.want:
			t.Errorf("Check(%s) = %q, want %q", tc.addr, err, tc.want)
		case err != nil && !errors.Is(err, ErrRefused):
			t.Errorf("Check(%s) = %v, which is not ErrRefused", tc.addr, err)
		}
		// The nil policy behaves as the empty one.
		if got := (*Policy)(nil).Check(a); (got == nil) != (err == nil) {
			t.Errorf("nil Policy: Check(%s) = %v, empty Policy: %v", tc.addr, got, err)
		}
	}
	if err := p.Check(netip.Addr{}); !errors.Is(err, ErrRefused) {
		t.Errorf("Check(zero Addr) = %v, want refused", err)
	}
}

// The fields of a refusal say the same as its message.
func TestRefusedErrorFields(t *testing.T) {
	var re *RefusedError
	if err := New(nil).Check(netip.MustParseAddr("64:ff9b::7f00:1")); !errors.As(err, &re) {
		t.Fatalf("got %v, want a *RefusedError", err)
	}
	if re.Addr != netip.MustParseAddr("64:ff9b::7f00:1") || re.Embedded != netip.MustParseAddr("127.0.0.1") ||
		re.Form != "NAT64" || re.Block != netip.MustParsePrefix("127.0.0.0/8") || re.Name != "Loopback" {
		t.Errorf("got %+v", *re)
	}
}

// Everything the hand-kept list of engine/httpclient.go refused before this
// package stays refused.
func TestOldBlocklistStillRefused(t *testing.T) {
	old := []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/96", "::1/128", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	}
	p := New(nil)
	for _, s := range old {
		for _, a := range samples(netip.MustParsePrefix(s)) {
			if err := p.Check(a); err == nil {
				t.Errorf("%s (in the old list's %s) is allowed", a, s)
			}
		}
	}
}

func TestParseAllowlist(t *testing.T) {
	got, errs := ParseAllowlist([]string{
		"10.1.0.0/16",
		" 192.168.1.5 ",
		"::1",
		"10.2.3.4/8",          // host bits: masked
		"::ffff:10.9.0.0/112", // mapped: the IPv4 prefix it means
		"::ffff:10.9.9.9",
		"2001:db8::/48",
		"not an address",
		"",
		"fe80::1%eth0",
		"10.0.0.0/33",
	})
	want := []string{"10.1.0.0/16", "192.168.1.5/32", "::1/128", "10.0.0.0/8", "10.9.0.0/16", "10.9.9.9/32", "2001:db8::/48"}
	var gotS []string
	for _, p := range got {
		gotS = append(gotS, p.String())
	}
	if strings.Join(gotS, " ") != strings.Join(want, " ") {
		t.Errorf("prefixes = %v, want %v", gotS, want)
	}
	wantErrs := []string{
		`allowlist entry 8 ("not an address"): not a CIDR range or an IP address`,
		`allowlist entry 9 (""): not a CIDR range or an IP address`,
		`allowlist entry 10 ("fe80::1%eth0"): a zone-scoped address cannot be allowlisted (zone-scoped addresses are always refused)`,
		`allowlist entry 11 ("10.0.0.0/33"): not a CIDR range or an IP address`,
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("errors = %v, want %d", errs, len(wantErrs))
	}
	for i, err := range errs {
		if err.Error() != wantErrs[i] {
			t.Errorf("error %d = %q, want %q", i, err, wantErrs[i])
		}
	}
}

func TestAllowlist(t *testing.T) {
	for _, tc := range []struct {
		allow   []string
		addr    string
		allowed bool
	}{
		{nil, "127.0.0.1", false},
		{[]string{"127.0.0.0/8"}, "127.0.0.1", true},
		{[]string{"127.0.0.0/8"}, "::ffff:127.0.0.1", true}, // IPv4 entries match mapped forms
		{[]string{"127.0.0.1"}, "127.0.0.2", false},
		{[]string{"::ffff:127.0.0.1"}, "127.0.0.1", true}, // a mapped entry is the IPv4 address
		{[]string{"::ffff:127.0.0.0/104"}, "127.1.2.3", true},
		{[]string{"127.0.0.0/8"}, "::1", false},
		{[]string{"::1"}, "::1", true},
		{[]string{"::1"}, "127.0.0.1", false},
		{[]string{"10.1.0.0/16"}, "10.1.2.3", true},
		{[]string{"10.1.0.0/16"}, "10.2.0.1", false},
		{[]string{"fe80::/10"}, "fe80::1", true},
		{[]string{"fe80::/10"}, "fe80::1%eth0", false}, // zones are refused, allowlisted or not
		{[]string{"ff00::/8"}, "ff02::1", true},
		// An allowlisted IPv4 address does not allow the IPv6 forms that
		// embed it other than the mapped one; they are listed themselves.
		{[]string{"127.0.0.0/8"}, "64:ff9b::7f00:1", false},
		{[]string{"127.0.0.0/8"}, "2002:7f00:1::", false},
		{[]string{"64:ff9b::/96"}, "64:ff9b::7f00:1", true},
		{[]string{"2001::/32"}, "2001:0:4136:e378:8000:63bf:3fff:fdd2", true},
		{[]string{"0.0.0.0/0"}, "192.168.1.1", true},
		{[]string{"0.0.0.0/0"}, "fc00::1", false},
		{[]string{"::/0"}, "fc00::1", true},
		{[]string{"::/0"}, "::ffff:10.0.0.1", false}, // a mapped address is IPv4
	} {
		pfx, errs := ParseAllowlist(tc.allow)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		err := New(pfx).Check(netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.allowed {
			t.Errorf("allow %v: Check(%s) = %v, want allowed=%v", tc.allow, tc.addr, err, tc.allowed)
		}
	}
}

// New normalises what it is given as ParseAllowlist does, and skips the
// zero Prefix.
func TestNewNormalises(t *testing.T) {
	p := New([]netip.Prefix{
		{},
		netip.PrefixFrom(netip.MustParseAddr("::ffff:10.0.0.0"), 104),
		netip.PrefixFrom(netip.MustParseAddr("192.168.7.7"), 16),
	})
	for addr, allowed := range map[string]bool{
		"10.3.4.5":        true,
		"192.168.200.1":   true,
		"172.16.0.1":      false,
		"::ffff:10.3.4.5": true,
	} {
		if err := p.Check(netip.MustParseAddr(addr)); (err == nil) != allowed {
			t.Errorf("Check(%s) = %v, want allowed=%v", addr, err, allowed)
		}
	}
}

// BenchmarkCheck compares Check with the hand-kept list it replaces (the
// engine's code before this package, copied here as the baseline), on
// public addresses (every dial) and refused ones.
func BenchmarkCheck(b *testing.B) {
	sets := []struct {
		name  string
		addrs []string
	}{
		{"public", []string{"8.8.8.8", "2606:4700:4700::1111", "::ffff:1.1.1.1", "2001:4860:4860::8888"}},
		{"refused", []string{"127.0.0.1", "fd00::1", "169.254.169.254", "fe80::1"}},
	}
	for _, set := range sets {
		var addrs []netip.Addr
		for _, s := range set.addrs {
			addrs = append(addrs, netip.MustParseAddr(s))
		}
		b.Run("old-list/"+set.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_ = oldCheck(addrs[i%len(addrs)])
			}
		})
		b.Run("ssrf/"+set.name, func(b *testing.B) {
			b.ReportAllocs()
			p := New(nil)
			for i := 0; b.Loop(); i++ {
				_ = p.Check(addrs[i%len(addrs)])
			}
		})
	}
}

var oldBlocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "::/96", "::1/128", "2001:db8::/32", "fc00::/7",
		"fe80::/10", "fec0::/10", "ff00::/8"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

func oldCheck(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	blocked := a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast()
	for _, pfx := range oldBlocked {
		if blocked {
			break
		}
		blocked = pfx.Contains(a)
	}
	if blocked {
		return fmt.Errorf("connection to %s refused: not a public address (allow it with http_client.ip_range_allowlist)", a)
	}
	return nil
}
