// Package ssrf decides which IP addresses an outbound client may connect to.
//
// It refuses every address that IANA's Special-Purpose Address Registries do
// not mark globally reachable (loopback, private, link-local, documentation,
// benchmarking, reserved, ...), multicast, the IPv6 space outside global
// unicast 2000::/3, and every IPv6 form that carries an IPv4 address which
// would itself be refused (IPv4-mapped, NAT64, 6to4, SIIT, IPv4-compatible;
// Teredo is refused outright). An allowlist of prefixes overrides all of it.
//
// The check is a pure function of the address, so it can run in a
// net.Dialer's Control hook: after DNS resolution, on the address actually
// dialled, for every connection and every redirect.
package ssrf

//go:generate go test -run TestRegistryTable -args -update

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
)

// ErrRefused is what every refusal from Check and Control matches with
// errors.Is.
var ErrRefused = errors.New("address refused")

// RefusedError says which address was refused and why.
type RefusedError struct {
	// Addr is the address checked (invalid when Control could not parse one).
	Addr netip.Addr
	// Embedded is the IPv4 address that Addr carries, when the refusal is
	// about it; Form names how it is carried ("NAT64", "6to4", ...).
	Embedded netip.Addr
	Form     string
	// Block and Name are the refused block and its name (zero for a zone or
	// an unparsable address).
	Block netip.Prefix
	Name  string

	outside bool   // Addr is outside Block rather than in it
	note    string // said after the block
	msg     string // the whole message, for the rare refusals with no block
}

// Error is formatted here rather than where the refusal is made: a refused
// dial's error may never be printed.
func (e *RefusedError) Error() string {
	switch {
	case e.msg != "":
		return e.msg
	case !e.Addr.IsValid():
		return "refusing an invalid IP address"
	case e.Addr.Zone() != "":
		return fmt.Sprintf("%s is zone-scoped (%%%s): zone-scoped addresses are refused", e.Addr, e.Addr.Zone())
	case e.Embedded.IsValid():
		return fmt.Sprintf("%s embeds %s (%s), which is in %s (%s)", e.Addr, e.Embedded, e.Form, e.Block, e.Name)
	case e.outside:
		return fmt.Sprintf("%s is outside %s, the %s space", e.Addr, e.Block, e.Name)
	case e.note != "":
		return fmt.Sprintf("%s is in %s (%s): %s", e.Addr, e.Block, e.Name, e.note)
	}
	return fmt.Sprintf("%s is in %s (%s)", e.Addr, e.Block, e.Name)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Policy is an allowlist over the built-in blocklist. A Policy is immutable
// and safe for concurrent use; the nil *Policy allows nothing extra.
type Policy struct {
	allow []netip.Prefix
}

// New returns a policy that allows the addresses in allow even when the
// blocklist refuses them. IPv4-mapped prefixes (::ffff:a.b.c.d/n, n >= 96)
// are turned into the IPv4 prefixes they mean, and an IPv4 prefix also
// matches the IPv4-mapped forms of its addresses. An allowlisted IPv4
// address does not allow the NAT64, 6to4, Teredo or SIIT addresses that
// embed it: those are other destinations, to be listed themselves.
func New(allow []netip.Prefix) *Policy {
	p := &Policy{}
	for _, pfx := range allow {
		if pfx.IsValid() {
			p.allow = append(p.allow, normalise(pfx))
		}
	}
	return p
}

func normalise(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// ParseAllowlist reads allowlist entries: CIDR ranges ("10.1.0.0/16",
// "2001:db8::/48") or single addresses ("10.1.2.3", "::1"). It returns the
// entries it could read and an error for each one it could not, naming the
// entry by its position (from 1) and text.
func ParseAllowlist(entries []string) ([]netip.Prefix, []error) {
	var out []netip.Prefix
	var errs []error
	for i, raw := range entries {
		s := strings.TrimSpace(raw)
		if pfx, err := netip.ParsePrefix(s); err == nil {
			out = append(out, normalise(pfx))
			continue
		}
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("allowlist entry %d (%q): not a CIDR range or an IP address", i+1, raw))
		case a.Zone() != "":
			errs = append(errs, fmt.Errorf("allowlist entry %d (%q): a zone-scoped address cannot be allowlisted (zone-scoped addresses are always refused)", i+1, raw))
		default:
			out = append(out, normalise(netip.PrefixFrom(a, a.BitLen())))
		}
	}
	return out, errs
}

// Check returns nil when a may be connected to, and a *RefusedError
// otherwise. Zone-scoped addresses (fe80::1%eth0) are always refused: a
// zone only has a meaning on this host's own links.
func (p *Policy) Check(a netip.Addr) error {
	if !a.IsValid() {
		return &RefusedError{}
	}
	if a.Zone() != "" {
		return &RefusedError{Addr: a}
	}
	if p != nil {
		u := a.Unmap() // a mapped address is the IPv4 address itself
		for _, pfx := range p.allow {
			if pfx.Contains(u) {
				return nil
			}
		}
	}
	return blocked(a)
}

// Control is a net.Dialer Control hook: it refuses to connect to an address
// that Check refuses, or that is not an IP address and port at all.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{msg: fmt.Sprintf("refusing %s connection to %q: not an IP address and port: %v", network, address, err)}
	}
	return p.Check(ap.Addr())
}

// reach is a registry row's "Globally Reachable" column.
type reach uint8

const (
	reachNo   reach = iota // False
	reachYes               // True
	reachNA                // N/A: depends on the IPv4 address the block embeds
	reachNone              // blank: the allocation was terminated
)

// block is one refused or registered address block.
type block struct {
	prefix netip.Prefix
	name   string
	reach  reach
}

// Registry rows by family, most specific first, so the first row that
// contains an address is the one that speaks for it (2001:3::/32, True,
// inside 2001::/23, False).
var registry4, registry6 = func() (v4, v6 []block) {
	for _, b := range ianaBlocks {
		if b.prefix.Addr().Is4() {
			v4 = append(v4, b)
		} else {
			v6 = append(v6, b)
		}
	}
	bySpecificity := func(x, y block) int { return y.prefix.Bits() - x.prefix.Bits() }
	slices.SortStableFunc(v4, bySpecificity)
	slices.SortStableFunc(v6, bySpecificity)
	return v4, v6
}()

// Blocks refused beyond the registries' not-globally-reachable rows.
var (
	// Synapse's default ip_range_blocklist refuses all of 192.0.0.0/24,
	// including the two anycast addresses the registry marks reachable
	// (192.0.0.9 PCP, 192.0.0.10 TURN): answered by the nearest server,
	// which may sit inside the operator's network. Keep Synapse's floor.
	extra4 = []block{
		{netip.MustParsePrefix("192.0.0.0/24"), "IETF Protocol Assignments, refused whole as in Synapse's default ip_range_blocklist", reachNo},
		{netip.MustParsePrefix("224.0.0.0/4"), "Multicast", reachNo},
	}
	extra6 = []block{
		{netip.MustParsePrefix("fec0::/10"), "Site-Local, deprecated", reachNo},
		{netip.MustParsePrefix("ff00::/8"), "Multicast", reachNo},
	}

	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour     = netip.MustParsePrefix("2002::/16")
	teredo        = netip.MustParsePrefix("2001::/32")
	siit          = netip.MustParsePrefix("::ffff:0:0:0/96")
	compatible    = netip.MustParsePrefix("::/96")
)

// refused4 returns the block that refuses the IPv4 address a, or nil.
func refused4(a netip.Addr) *block {
	for i := range registry4 {
		if b := &registry4[i]; b.prefix.Contains(a) {
			if b.reach != reachYes {
				return b
			}
			break
		}
	}
	for i := range extra4 {
		if b := &extra4[i]; b.prefix.Contains(a) {
			return b
		}
	}
	return nil
}

// blocked applies the blocklist to a (valid, without zone).
func blocked(a netip.Addr) error {
	if a.Is4() {
		if b := refused4(a); b != nil {
			return inBlock(a, b)
		}
		return nil
	}
	if a.Is4In6() {
		return embedding(a, a.Unmap(), "IPv4-mapped")
	}
	return blocked6(a)
}

func blocked6(a netip.Addr) error {
	b := a.As16()
	v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte(b[i : i+4])) }
	switch {
	case nat64.Contains(a):
		// The well-known prefix is globally reachable: the translator
		// connects to the embedded IPv4 address, so that decides. The
		// local-use prefix 64:ff9b:1::/48 is refused outright by its
		// registry row (not globally reachable): its translators are the
		// operator's own, and where the IPv4 address sits in it depends on
		// the prefix length the operator chose (RFC 6052), so no embedded
		// address can be read off it reliably.
		return embedding(a, v4(12), "NAT64")
	case sixToFour.Contains(a):
		// Bits 16-48: the IPv4 address of the 6to4 site's router.
		return embedding(a, v4(2), "6to4")
	case teredo.Contains(a):
		// Refused outright: the registry leaves Teredo's reachability N/A,
		// the packet goes through whichever relay is nearest to a client at
		// an obfuscated address and port of the sender's choosing, and the
		// protocol is out of service. Name a refused embedded address first,
		// for a clearer message.
		if err := embedding(a, v4(4), "Teredo server"); err != nil {
			return err
		}
		client := v4(12).As4()
		for i := range client {
			client[i] ^= 0xff
		}
		if err := embedding(a, netip.AddrFrom4(client), "Teredo client"); err != nil {
			return err
		}
		return &RefusedError{Addr: a, Block: teredo, Name: "TEREDO", note: "Teredo addresses are refused whatever they embed"}
	case siit.Contains(a):
		// SIIT's IPv4-translated form (RFC 2765, obsolete) is outside
		// 2000::/3 and refused anyway; judge the embedded address first so
		// the message names a loopback or private target.
		if err := embedding(a, v4(12), "SIIT"); err != nil {
			return err
		}
		return &RefusedError{Addr: a, Block: siit, Name: "SIIT IPv4-translated, obsolete"}
	case compatible.Contains(a) && a.Compare(netip.IPv6Loopback()) > 0:
		// IPv4-compatible (RFC 4291, deprecated), outside 2000::/3; :: and
		// ::1 have registry rows of their own.
		if err := embedding(a, v4(12), "IPv4-compatible"); err != nil {
			return err
		}
		return &RefusedError{Addr: a, Block: compatible, Name: "IPv4-compatible, deprecated"}
	}
	for i := range registry6 {
		if r := &registry6[i]; r.prefix.Contains(a) {
			if r.reach != reachYes {
				return inBlock(a, r)
			}
			break
		}
	}
	for i := range extra6 {
		if r := &extra6[i]; r.prefix.Contains(a) {
			return inBlock(a, r)
		}
	}
	if !globalUnicast.Contains(a) {
		// Everything outside 2000::/3 is link-scoped, multicast or not
		// allocated for global unicast; NAT64 above is the one exception.
		return &RefusedError{Addr: a, Block: globalUnicast, Name: "IPv6 global unicast", outside: true}
	}
	return nil
}

// embedding refuses a when the IPv4 address v4 it embeds (as form) is
// refused; the allowlist does not apply to v4.
func embedding(a, v4 netip.Addr, form string) error {
	b := refused4(v4)
	if b == nil {
		return nil
	}
	return &RefusedError{Addr: a, Embedded: v4, Form: form, Block: b.prefix, Name: b.name}
}

func inBlock(a netip.Addr, b *block) error {
	return &RefusedError{Addr: a, Block: b.prefix, Name: b.name}
}
