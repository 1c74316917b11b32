package guestinit

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/loftd/loftd/contract"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// networkSteps give a passt guest its network: eth0 up with the fixed
// address and a default route through passt's gateway (the same values
// passt was started with and, on libkrun 1.18+, handed out by DHCP, so
// configuring again is a no-op there) and a resolver when the image has
// none; the host's names go into /etc/hosts with the baseline's (hostsStep).
// TSI (libkrun intercepts the sockets) and none need nothing beyond lo.
func (e *enter) networkSteps() []Step {
	if !contract.HasNIC(e.guest.Network) {
		return nil
	}
	cidr := contract.NetAddress + "/" + strconv.Itoa(contract.NetPrefix)
	return []Step{
		{Desc: fmt.Sprintf("ip link set %[1]s up; ip addr replace %[2]s dev %[1]s; ip route replace default via %[3]s",
			contract.NetDevice, cidr, contract.NetGateway), Do: func() error {
			return configureLink(contract.NetDevice, cidr, contract.NetGateway, e.guest.Network == contract.NetworkPasst)
		}},
		{Desc: "resolv.conf nameserver " + contract.NetDNS + " (unless the image has one)", Do: e.resolvConf},
	}
}

// configureLink sets dev up with address cidr and a default route via gw.
// Replace, not add: an address or route DHCP already set is no error.
// Netlink only for the address and the route: the index and the up flag
// are ioctls and the announcement a raw socket, which under TCG took
// 50-60 ms less than netlink's LinkByName and LinkSetUp and package net's
// Dial, whose code ran nowhere else in the guest init.
func configureLink(dev, cidr, gw string, announceTo bool) error {
	index, err := linkIndex(dev)
	if err != nil {
		return fmt.Errorf("find %s (no virtio-net device?): %w", dev, err)
	}
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index, Name: dev}}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", cidr, dev, err)
	}
	if err := linkUp(dev); err != nil {
		return err
	}
	gwIP := net.ParseIP(gw)
	route := &netlink.Route{LinkIndex: index, Gw: gwIP}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("default route via %s on %s: %w", gw, dev, err)
	}
	if !announceTo {
		return nil // loftd's egress network learns the guest from its ARP
	}
	return announce(gwIP)
}

// announce (passt only) sends one datagram to the gateway's discard port (the host's
// loopback, port 9): passt learns the guest's MAC and address only from
// the guest's own IPv4 frames, and until then a published port's
// connection never reaches the guest (seen with passt 0.0~git20230309).
func announce(gw net.IP) error {
	fail := func(err error) error { return fmt.Errorf("announce to %s: %w", gw, err) }
	ip4 := gw.To4()
	if ip4 == nil {
		return fail(fmt.Errorf("not an IPv4 address"))
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	to := &unix.SockaddrInet4{Port: 9}
	copy(to.Addr[:], ip4)
	if err := unix.Sendto(fd, []byte{0}, 0, to); err != nil {
		return fail(os.NewSyscallError("sendto", err))
	}
	return nil
}

// resolvConf points the resolver at passt's DNS forward address when the
// image gives none: /etc/resolv.conf missing, a dangling link (say to
// systemd-resolved's stub under /run, which is a fresh tmpfs here), or a
// file without a nameserver line. An image's own nameserver is kept: it
// is the image's choice, and passt reaches any address but the host's
// loopback. The root is the task's private copy, so the image is not
// changed.
func (e *enter) resolvConf() error {
	p := e.devPath("/etc/resolv.conf")
	data, err := os.ReadFile(p) // follows a link: a dangling one is ErrNotExist
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Under the egress policy DNS goes only to loftd's resolver (the
	// host drops the rest), so an image's own nameserver would leave the
	// guest without names: loftd's replaces it.
	if err == nil && hasNameserver(data) && e.guest.Network != contract.NetworkEgress {
		return nil
	}
	if err := os.MkdirAll(e.devPath("/etc"), 0o755); err != nil {
		return err
	}
	// A rename replaces a dangling link itself, never writes through it.
	return writeFileAtomic(p, []byte("# written by loftd: its network forwards DNS to the host's resolver\nnameserver "+contract.NetDNS+"\n"), 0o644)
}

func hasNameserver(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			return true
		}
	}
	return false
}

// hostAliasLines maps the host's names to passt's gateway, which reaches
// the host's loopback, unless the image's /etc/hosts names them already.
func hostAliasLines(data []byte) []string {
	named := hostsNames(data)
	var missing []string
	for _, n := range contract.HostAliases {
		if !named[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []string{contract.NetGateway + "\t" + strings.Join(missing, " ")}
}
