package guestinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/loftd/loftd/contract"

	"golang.org/x/sys/unix"
)

// baselineSteps give the guest what every container engine gives a
// container and every Linux program expects, whatever the image lacks: the
// loopback interface up, POSIX shared memory and message queues, the
// /dev/fd links, a hostname that resolves, /etc/mtab, and a kernel log
// closed to the user. /etc/resolv.conf belongs to the network step.
func (e *enter) baselineSteps() []Step {
	steps := []Step{
		e.mountStep("tmpfs", "shm", "/dev/shm", "mode=1777", -1),
		e.mountStep("mqueue", "mqueue", "/dev/mqueue", "", -1),
		e.linkStep("/proc/self/fd", "/dev/fd"),
		e.linkStep("/proc/self/fd/0", "/dev/stdin"),
		e.linkStep("/proc/self/fd/1", "/dev/stdout"),
		e.linkStep("/proc/self/fd/2", "/dev/stderr"),
		{Desc: "ip link set lo up", Do: loUp},
	}
	if h := e.guest.Hostname; h != "" {
		steps = append(steps, Step{Desc: "hostname " + h, Do: func() error { return unix.Sethostname([]byte(h)) }})
	}
	return append(steps,
		e.hostsStep(),
		e.linkStep("/proc/self/mounts", "/etc/mtab"),
		e.sysctlStep("kernel.dmesg_restrict", "1"),
	)
}

// linkStep creates the symlink link → target when link does not exist; an
// image's own file or link there is kept.
func (e *enter) linkStep(target, link string) Step {
	return Step{Desc: "ln -s " + target + " " + link, Do: func() error {
		p := e.devPath(link)
		if _, err := os.Lstat(p); err == nil {
			return nil
		}
		if err := os.Symlink(target, p); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	}}
}

// loUp sets IFF_UP on lo.
func loUp() error { return linkUp("lo") }

// linkUp sets IFF_UP on dev with SIOCSIFFLAGS: one ioctl, where netlink
// would bring package net (and, in deptest's cgo build, runtime/cgo) into
// the static guest init for nothing more, and costs 8-20 ms of the boot
// under TCG the first time its code runs.
func linkUp(dev string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set %s up: %w", dev, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return fmt.Errorf("set %s up: %w", dev, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set %s up: get flags: %w", dev, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set %s up: %w", dev, err)
	}
	return nil
}

// linkIndex returns dev's interface index (SIOCGIFINDEX).
func linkIndex(dev string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// sysctlStep writes value to /proc/sys/NAME (dots as slashes).
func (e *enter) sysctlStep(name, value string) Step {
	return Step{Desc: "sysctl " + name + "=" + value, Do: func() error {
		p := e.devPath("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
		return os.WriteFile(p, []byte(value+"\n"), 0o644)
	}}
}

// hostsStep appends to /etc/hosts (creating it) the lines that make
// localhost and the hostname resolve, and with passt's network the host's
// names (hostAliasLines), when the image's file lacks them. The image's own
// lines are never changed. One write for both: each rewrite of a file on
// the root share is a dozen virtiofs round trips, 15-30 ms under TCG.
func (e *enter) hostsStep() Step {
	names := []string{"localhost"}
	if e.guest.Hostname != "" {
		names = append(names, e.guest.Hostname)
	}
	passt := contract.HasNIC(e.guest.Network)
	if passt {
		names = append(names, contract.HostAliases...)
	}
	return Step{Desc: "hosts /etc/hosts " + strings.Join(names, " "), Do: func() error {
		return appendHosts(e.devPath("/etc/hosts"), func(data []byte) []string {
			add := hostsAdditions(data, e.guest.Hostname)
			if passt {
				add = append(add, hostAliasLines(data)...)
			}
			return add
		})
	}}
}

// appendHosts appends to the hosts file p (creating it) the lines missing
// says are missing from its contents; the file's own lines stay as they are.
func appendHosts(p string, missing func(data []byte) []string) error {
	data, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	add := missing(data)
	if len(add) == 0 {
		return nil
	}
	if len(data) > 0 && !strings.HasSuffix(string(data), "\n") {
		data = append(data, '\n')
	}
	data = append(data, strings.Join(add, "\n")+"\n"...)
	return writeFileAtomic(p, data, 0o644)
}

// hostsNames is every name some line of a hosts file maps.
func hostsNames(data []byte) map[string]bool {
	named := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		for i := 1; i < len(f); i++ {
			named[f[i]] = true
		}
	}
	return named
}

// hostsAdditions returns the /etc/hosts lines missing from data: localhost
// on 127.0.0.1 and on ::1, and hostname (when set) on 127.0.1.1 as Debian
// maps it, unless some line names it already.
func hostsAdditions(data []byte, hostname string) []string {
	type pair struct{ addr, name string }
	has := map[pair]bool{}
	named := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for _, n := range f[1:] {
			has[pair{f[0], n}] = true
			named[n] = true
		}
	}
	var add []string
	if !has[pair{"127.0.0.1", "localhost"}] {
		add = append(add, "127.0.0.1\tlocalhost")
	}
	if !has[pair{"::1", "localhost"}] {
		add = append(add, "::1\tlocalhost ip6-localhost ip6-loopback")
	}
	if hostname != "" && !named[hostname] {
		add = append(add, "127.0.1.1\t"+hostname)
	}
	return add
}
