package testnet

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// ipCmd runs iproute2's ip with args and returns its error with the output,
// so a failed topology step names the command that failed.
func ipCmd(ip string, args ...string) error {
	out, err := exec.Command(ip, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS runs fn on an OS thread that has joined the named network namespace.
// A socket belongs to the namespace of the thread that created it, for its
// whole life, so listeners and dials made inside fn serve the test's
// namespaces while the rest of the test process stays in its own. The thread
// goes back to its namespace afterwards; if that fails it stays locked, and
// the runtime ends it with the goroutine instead of reusing it elsewhere.
func inNS(name string, fn func() error) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", name, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("leave netns %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// listenIn opens a listener in the named namespace.
func listenIn(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNS(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in netns %s: %w", network, addr, ns, err)
	}
	return l, nil
}

// packetIn opens a UDP socket in the named namespace.
func packetIn(ns, network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := inNS(ns, func() error {
		var err error
		c, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in netns %s: %w", network, addr, ns, err)
	}
	return c, nil
}

// dialIn dials address from the named namespace. address must be a literal
// IP and port: a name would be resolved by the host's resolver.
func dialIn(ctx context.Context, ns, network, address string) (net.Conn, error) {
	var c net.Conn
	err := inNS(ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// writeSysctl sets a sysctl of the named namespace: /proc/sys/net is read
// and written in the namespace of the thread that opens it.
func writeSysctl(ns, key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return inNS(ns, func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in netns %s: %w", key, value, ns, err)
		}
		return nil
	})
}
