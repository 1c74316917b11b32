package guestinit

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/loftd/loftd/contract"
)

func TestHostAliasLines(t *testing.T) {
	tests := []struct {
		name, hosts string
		want        []string
	}{
		{"empty", "", []string{"10.0.2.2\thost.containers.internal host.docker.internal"}},
		{"image maps one", "127.0.0.1 localhost\n192.0.2.9 host.docker.internal\n", []string{"10.0.2.2\thost.containers.internal"}},
		{"commented out is not mapped", "# 1.2.3.4 host.containers.internal host.docker.internal\n", []string{"10.0.2.2\thost.containers.internal host.docker.internal"}},
		{"both mapped", "1.2.3.4 host.containers.internal host.docker.internal\n", nil},
	}
	for _, tt := range tests {
		if got := hostAliasLines([]byte(tt.hosts)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: hostAliasLines(%q) = %q, want %q", tt.name, tt.hosts, got, tt.want)
		}
	}
}

// TestResolvConf: written when the image has none, a dangling link or no
// nameserver; an image's nameserver is kept.
func TestResolvConf(t *testing.T) {
	written := "# written by loftd: its network forwards DNS to the host's resolver\nnameserver " + contract.NetDNS + "\n"
	tests := []struct {
		name  string
		setup func(etc string)
		want  string
		mode  string
	}{
		{"missing", func(string) {}, written, ""},
		{"dangling link", func(etc string) {
			os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(etc, "resolv.conf"))
		}, written, ""},
		{"no nameserver", func(etc string) {
			os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("search example.org\n"), 0o644)
		}, written, ""},
		{"image's own", func(etc string) {
			os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644)
		}, "nameserver 192.0.2.53\n", contract.NetworkPasst},
		// The egress network drops DNS to any other resolver: loftd's
		// replaces the image's.
		{"image's own, egress", func(etc string) {
			os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644)
		}, written, contract.NetworkEgress},
	}
	for _, tt := range tests {
		root := t.TempDir()
		etc := filepath.Join(root, "etc")
		os.MkdirAll(etc, 0o755)
		tt.setup(etc)
		f := &fakeSystem{}
		e := newEnter(f.system(t), false, nil)
		e.sys.SysRoot = root
		e.guest.Network = tt.mode
		if err := e.resolvConf(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		p := filepath.Join(etc, "resolv.conf")
		data, err := os.ReadFile(p)
		if err != nil || string(data) != tt.want {
			t.Errorf("%s: resolv.conf = %q, %v; want %q", tt.name, data, err, tt.want)
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s: resolv.conf is still a link", tt.name)
		}
	}
}

// TestHostsStep: one write gives /etc/hosts localhost, the hostname and,
// with passt's network, the host's names, after the image's own lines.
func TestHostsStep(t *testing.T) {
	tests := []struct {
		network string
		want    string
	}{
		{contract.NetworkPasst, "192.0.2.1 mirror\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tproj\n10.0.2.2\thost.containers.internal host.docker.internal\n"},
		{contract.NetworkNone, "192.0.2.1 mirror\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tproj\n"},
	}
	for _, tt := range tests {
		root := t.TempDir()
		etc := filepath.Join(root, "etc")
		os.MkdirAll(etc, 0o755)
		os.WriteFile(filepath.Join(etc, "hosts"), []byte("192.0.2.1 mirror"), 0o644)
		f := &fakeSystem{}
		e := newEnter(f.system(t), false, nil)
		e.sys.SysRoot = root
		e.guest = contract.Guest{Hostname: "proj", Network: tt.network}
		if err := e.hostsStep().Do(); err != nil {
			t.Fatalf("network %s: %v", tt.network, err)
		}
		data, err := os.ReadFile(filepath.Join(etc, "hosts"))
		if err != nil || string(data) != tt.want {
			t.Errorf("network %s: /etc/hosts = %q, %v; want %q", tt.network, data, err, tt.want)
		}
	}
}
