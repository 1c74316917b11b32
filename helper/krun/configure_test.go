package krun

import (
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
	"github.com/loftd/loftd/libkrun/krundouble"
)

func TestConfigureCallSequence(t *testing.T) {
	tsi := fullPlan()
	tsi.Network = launch.Network{Mode: launch.NetworkTSI, Publish: []launch.Publish{tcp(8080, 80), tcp(2222, 22)}}
	tsi.Console.StdioPorts = false
	none := fullPlan()
	none.Network = launch.Network{Mode: "none"}
	none.VsockPorts = nil
	none.Shares = append(none.Shares, launch.Share{Tag: "loftd-vol0", Path: "/srv/ro", ReadOnly: true})
	noneVsock := fullPlan()
	noneVsock.Network = launch.Network{Mode: "none"}
	tests := []struct {
		name  string
		plan  *launch.Plan
		minor int // the libkrun release the double plays, 1.minor
		want  []string
	}{{
		// What every krun run is today: no network, the workload's
		// argv/env/workdir only in /.krun_config.json.
		name:  "typical: network none, no exec, env or workdir call",
		plan:  none,
		minor: 19,
		want: []string{
			`krun_get_max_vcpus`,
			`krun_set_log_level level=2`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=0 vcpus=4 ram_mib=2048`,
			`krun_set_nested_virt ctx=0 enabled=1`,
			`krun_set_root ctx=0 path="/state/tasks/t1/rootfs"`,
			`krun_add_disk ctx=0 block_id="loftd-nix" path="/state/ws/nix.raw" read_only=0`,
			`krun_add_disk ctx=0 block_id="loftd-containers" path="/state/ws/containers.raw" read_only=1`,
			`krun_add_virtiofs ctx=0 tag="loftd-workspace" path="/home/u/project"`,
			`krun_add_virtiofs3 ctx=0 tag="loftd-vol0" path="/srv/ro" shm_size=0 read_only=1`,
			`krun_disable_implicit_vsock ctx=0`,
			`krun_disable_implicit_console ctx=0`,
			`krun_add_virtio_console_default ctx=0 in=0 out=1 err=2`,
			`krun_set_rlimits ctx=0 rlimits=["7=1024:4096","6=4096:8192"]`,
		},
	}, {
		name:  "network none with vsock ports: an explicit vsock without TSI",
		plan:  noneVsock,
		minor: 17,
		want: []string{
			`krun_get_max_vcpus`,
			`krun_set_log_level level=2`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=0 vcpus=4 ram_mib=2048`,
			`krun_set_root ctx=0 path="/state/tasks/t1/rootfs"`,
			`krun_add_disk ctx=0 block_id="loftd-nix" path="/state/ws/nix.raw" read_only=0`,
			`krun_add_disk ctx=0 block_id="loftd-containers" path="/state/ws/containers.raw" read_only=1`,
			`krun_add_virtiofs ctx=0 tag="loftd-workspace" path="/home/u/project"`,
			`krun_disable_implicit_vsock ctx=0`,
			`krun_add_vsock ctx=0 tsi_features=0`,
			`krun_add_vsock_port2 ctx=0 port=1024 path="/state/tasks/t1/status.sock" listen=1`,
			`krun_add_vsock_port2 ctx=0 port=1025 path="/state/tasks/t1/log.sock" listen=0`,
			`krun_disable_implicit_console ctx=0`,
			`krun_add_virtio_console_default ctx=0 in=0 out=1 err=2`,
			`krun_set_rlimits ctx=0 rlimits=["7=1024:4096","6=4096:8192"]`,
		},
	}, {
		name:  "passt on 1.19: DHCP flag",
		plan:  fullPlan(),
		minor: 19,
		want: []string{
			`krun_get_max_vcpus`,
			`krun_set_log_level level=2`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=0 vcpus=4 ram_mib=2048`,
			`krun_set_nested_virt ctx=0 enabled=1`,
			`krun_set_root ctx=0 path="/state/tasks/t1/rootfs"`,
			`krun_add_disk ctx=0 block_id="loftd-nix" path="/state/ws/nix.raw" read_only=0`,
			`krun_add_disk ctx=0 block_id="loftd-containers" path="/state/ws/containers.raw" read_only=1`,
			`krun_add_virtiofs ctx=0 tag="loftd-workspace" path="/home/u/project"`,
			`krun_add_net_unixstream ctx=0 path="/run/user/1000/passt.sock" fd=-1 mac=5a:94:ef:e4:0c:ee features=19587 flags=2`,
			`krun_add_vsock_port2 ctx=0 port=1024 path="/state/tasks/t1/status.sock" listen=1`,
			`krun_add_vsock_port2 ctx=0 port=1025 path="/state/tasks/t1/log.sock" listen=0`,
			`krun_disable_implicit_console ctx=0`,
			`krun_add_virtio_console_default ctx=0 in=0 out=1 err=2`,
			`krun_set_rlimits ctx=0 rlimits=["7=1024:4096","6=4096:8192"]`,
		},
	}, {
		name:  "tsi with a port map, implicit console",
		plan:  tsi,
		minor: 19,
		want: []string{
			`krun_get_max_vcpus`,
			`krun_set_log_level level=2`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=0 vcpus=4 ram_mib=2048`,
			`krun_set_nested_virt ctx=0 enabled=1`,
			`krun_set_root ctx=0 path="/state/tasks/t1/rootfs"`,
			`krun_add_disk ctx=0 block_id="loftd-nix" path="/state/ws/nix.raw" read_only=0`,
			`krun_add_disk ctx=0 block_id="loftd-containers" path="/state/ws/containers.raw" read_only=1`,
			`krun_add_virtiofs ctx=0 tag="loftd-workspace" path="/home/u/project"`,
			`krun_set_port_map ctx=0 port_map=["8080:80","2222:22"]`,
			`krun_add_vsock_port2 ctx=0 port=1024 path="/state/tasks/t1/status.sock" listen=1`,
			`krun_add_vsock_port2 ctx=0 port=1025 path="/state/tasks/t1/log.sock" listen=0`,
			`krun_set_rlimits ctx=0 rlimits=["7=1024:4096","6=4096:8192"]`,
		},
	}, {
		name:  "tsi without a port map exposes none; most vCPUs; 1.12 has no max vCPU call",
		plan:  &launch.Plan{Version: launch.Version, VMM: "krun", VCPUs: launch.MaxVCPUs, RAMMiB: 512, Root: "/r", ExecPath: "/init", Network: launch.Network{Mode: "tsi"}},
		minor: 12,
		want: []string{
			`krun_set_log_level level=0`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=0 vcpus=255 ram_mib=512`,
			`krun_set_root ctx=0 path="/r"`,
			`krun_set_port_map ctx=0 port_map=[]`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh library each: libkrun sets up logging once per load.
			l, log := openRelease(t, tt.minor)
			p := *tt.plan
			if tt.minor < DHCPFlagMinor {
				p.NestedVirt = false
			}
			ctx, err := Configure(l, &p)
			if err != nil {
				t.Fatalf("Configure(%s) = %v, want nil", tt.name, err)
			}
			if ctx != krundouble.Ctx {
				t.Errorf("Configure(%s) ctx = %d, want %d", tt.name, ctx, krundouble.Ctx)
			}
			krundouble.Compare(t, "Configure("+tt.name+")", krundouble.Calls(t, log), tt.want)
		})
	}
}

// What a release of libkrun cannot do is refused before any context
// exists, naming the release needed; on a release that can, the same plan
// runs. The double plays each release (its symbols and its rules).
func TestConfigureByRelease(t *testing.T) {
	passt := func(p *launch.Plan) { p.NestedVirt = false }
	tests := []struct {
		name    string
		minor   int
		change  func(p *launch.Plan)
		wantErr string // "" for success
		want    string // a call that must be in the log on success
	}{
		{"none on 1.16: no krun_disable_implicit_vsock", 16, func(p *launch.Plan) { p.NestedVirt = false; p.Network = launch.Network{Mode: "none"} },
			"network none needs libkrun >= 1.17 (krun_disable_implicit_vsock)", ""},
		{"none on 1.17", 17, func(p *launch.Plan) { p.NestedVirt = false; p.Network = launch.Network{Mode: "none"} },
			"", "krun_disable_implicit_vsock ctx=0"},
		{"nested virt on 1.17", 17, func(p *launch.Plan) {}, "nested virtualization needs libkrun >= 1.18", ""},
		{"nested virt on 1.18", 18, func(p *launch.Plan) {}, "", "krun_set_nested_virt ctx=0 enabled=1"},
		{"passt on 1.17: no DHCP flag", 17, passt, "", `krun_add_net_unixstream ctx=0 path="/run/user/1000/passt.sock" fd=-1 mac=5a:94:ef:e4:0c:ee features=19587 flags=0`},
		{"passt on 1.18: DHCP flag", 18, passt, "", `krun_add_net_unixstream ctx=0 path="/run/user/1000/passt.sock" fd=-1 mac=5a:94:ef:e4:0c:ee features=19587 flags=2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, log := openRelease(t, tt.minor)
			p := fullPlan()
			tt.change(p)
			_, err := Configure(l, p)
			got := krundouble.Calls(t, log)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Configure(%s) = %v, want an error containing %q", tt.name, err, tt.wantErr)
				}
				if strings.Contains(strings.Join(got, "\n"), "krun_create_ctx") {
					t.Errorf("Configure(%s) created a context: %q", tt.name, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Configure(%s) = %v, want nil", tt.name, err)
			}
			if !slices.Contains(got, tt.want) {
				t.Errorf("Configure(%s) calls = %q, want %q among them", tt.name, got, tt.want)
			}
		})
	}
}

// krun_get_max_vcpus, when libkrun has it, lowers the 255 limit to KVM's.
func TestConfigureMaxVCPUs(t *testing.T) {
	l, _ := openRelease(t, 19)
	t.Setenv("KRUN_DOUBLE_MAX_VCPUS", "8")
	p := fullPlan()
	p.VCPUs = 9
	if _, err := Configure(l, p); err == nil || !strings.Contains(err.Error(), "9 vCPUs: libkrun runs 1 to 8 here") {
		t.Errorf("Configure(9 vCPUs, KVM allows 8) = %v, want the limit of 8", err)
	}
	p.VCPUs = 8
	if _, err := Configure(l, p); err != nil {
		t.Errorf("Configure(8 vCPUs, KVM allows 8) = %v, want nil", err)
	}
}

func TestConfigureErrno(t *testing.T) {
	tests := []struct {
		fail    string // the call the double fails with -EINVAL
		wantMsg string
		freed   bool // whether Configure must free the context
	}{
		{"krun_set_log_level", "krun_set_log_level: invalid argument", false},
		{"krun_create_ctx", "krun_create_ctx: invalid argument", false},
		{"krun_set_vm_config", "4 vCPUs, 2048 MiB: krun_set_vm_config: invalid argument", true},
		{"krun_add_disk", "disk loftd-nix /state/ws/nix.raw: krun_add_disk: invalid argument", true},
		{"krun_add_net_unixstream", "net 5a:94:ef:e4:0c:ee on /run/user/1000/passt.sock: krun_add_net_unixstream: invalid argument", true},
		{"krun_add_vsock_port2", "vsock port 1024 /state/tasks/t1/status.sock: krun_add_vsock_port2: invalid argument", true},
		{"krun_add_virtio_console_default", "console on fds 0, 1, 2: krun_add_virtio_console_default: invalid argument", true},
		{"krun_set_rlimits", "rlimits [7=1024:4096 6=4096:8192]: krun_set_rlimits: invalid argument", true},
	}
	for _, tt := range tests {
		t.Run(tt.fail, func(t *testing.T) {
			l, log := openDouble(t)
			t.Setenv("KRUN_DOUBLE_FAIL", tt.fail)
			_, err := Configure(l, fullPlan())
			if err == nil || err.Error() != tt.wantMsg {
				t.Fatalf("Configure() with %s failing = %v, want %q", tt.fail, err, tt.wantMsg)
			}
			var kerr *libkrun.Error
			if !errors.As(err, &kerr) || kerr.Op != tt.fail || !errors.Is(err, syscall.EINVAL) {
				t.Errorf("Configure() error = %#v, want *Error{Op: %q, Errno: EINVAL}", kerr, tt.fail)
			}
			got := krundouble.Calls(t, log)
			last := got[len(got)-1]
			if freed := last == "krun_free_ctx ctx=0"; freed != tt.freed {
				t.Errorf("Configure() with %s failing: last call %q, want context freed = %v", tt.fail, last, tt.freed)
			}
		})
	}
}

// A plan libkrun cannot run is refused before any call, naming the field.
func TestConfigureRejectsPlan(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *launch.Plan)
		want   string
	}{
		{"256 vCPUs", func(p *launch.Plan) { p.VCPUs = 256 }, "256 vCPUs: libkrun runs 1 to 255 here (ask for fewer with --cpus)"},
		{"1000 vCPUs", func(p *launch.Plan) { p.VCPUs = 1000 }, "1000 vCPUs: libkrun runs 1 to 255"},
		{"no vCPU", func(p *launch.Plan) { p.VCPUs = 0 }, "0 vCPUs"},
		{"RAM beyond uint32", func(p *launch.Plan) { p.RAMMiB = 1 << 33 }, "8589934592 MiB of RAM"},
		{"log level", func(p *launch.Plan) { p.LogLevel = "loud" }, `log level "loud" is not off, error`},
		{"network mode", func(p *launch.Plan) { p.Network.Mode = "slirp" }, `network mode "slirp" is not egress, passt, tsi or none`},
		{"passt without socket", func(p *launch.Plan) { p.Network.Socket = "" }, "network passt without a socket"},
		{"bad MAC", func(p *launch.Plan) { p.Network.MAC = "02:00:00:00:00" }, `MAC "02:00:00:00:00" is not a 6-byte address`},
		{"EUI-64", func(p *launch.Plan) { p.Network.MAC = "02:00:00:00:00:00:00:01" }, "is not a 6-byte address"},
		{"tsi with a socket", func(p *launch.Plan) { p.Network.Mode = "tsi" }, "only passt has one"},
		{"none with a publish", func(p *launch.Plan) { p.Network = launch.Network{Mode: "none", Publish: []launch.Publish{tcp(1, 2)}} }, "publish 1:2/tcp with network none"},
		{"tsi with a UDP publish", func(p *launch.Plan) {
			p.Network = launch.Network{Mode: "tsi", Publish: []launch.Publish{{HostFirst: 1, HostLast: 1, GuestFirst: 2, GuestLast: 2, Proto: launch.UDP}}}
		}, "publish 1:2/udp: libkrun's TSI port map carries TCP on every address only"},
		{"id-mapped shares (root)", func(p *launch.Plan) {
			p.ShareIDs = &launch.ShareIDs{UIDs: []launch.IDMap{{Guest: 1000, Host: 0, Size: 1}}, GIDs: []launch.IDMap{{Guest: 1000, Host: 0, Size: 1}}}
		}, "libkrun serves virtiofs as the helper, with no id map"},
	}
	l, _ := openDouble(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := krundouble.Record(t)
			p := fullPlan()
			tt.change(p)
			_, err := Configure(l, p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Configure(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
			// Only the query of KVM's vCPU limit, no context.
			if got := krundouble.Calls(t, log); len(got) > 1 || len(got) == 1 && got[0] != "krun_get_max_vcpus" {
				t.Errorf("Configure(%s) made calls %q, want none on a context", tt.name, got)
			}
		})
	}
}

// A read-only share on a libkrun without krun_add_virtiofs3 (1.18) is
// refused before any context: krun_add_virtiofs would let the guest write.
func TestConfigureReadOnlyShareNeeds119(t *testing.T) {
	krundouble.Emulate(t, 18)
	l, log := openDouble(t, krundouble.HideBefore(18)...)
	p := fullPlan()
	p.Shares = append(p.Shares, launch.Share{Tag: "loftd-vol0", Path: "/srv/ro", ReadOnly: true})
	_, err := Configure(l, p)
	if err == nil || !strings.Contains(err.Error(), "read-only share /srv/ro") || !strings.Contains(err.Error(), "krun_add_virtiofs3") {
		t.Fatalf("Configure(ro share) on libkrun 1.18 = %v, want a refusal naming krun_add_virtiofs3", err)
	}
	if got := krundouble.Calls(t, log); len(got) > 1 {
		t.Errorf("Configure(ro share) on libkrun 1.18 made calls %q, want none on a context", got)
	}
	p.Shares = p.Shares[:len(p.Shares)-1]
	if _, err := Configure(l, p); err != nil {
		t.Errorf("Configure(rw shares only) on libkrun 1.18 = %v, want nil", err)
	}
}

// A libkrun without an optional call fails only the plans that need it.
func TestConfigureMissingOptionalSymbol(t *testing.T) {
	l, log := openDouble(t, "krun_add_net_unixstream")
	_, err := Configure(l, fullPlan())
	const wantErr = "net 5a:94:ef:e4:0c:ee on /run/user/1000/passt.sock: krun_add_net_unixstream: not in libkrun "
	if err == nil || !strings.HasPrefix(err.Error(), wantErr) {
		t.Errorf("Configure(passt plan) = %v, want prefix %q", err, wantErr)
	}
	got := krundouble.Calls(t, log)
	if last := got[len(got)-1]; last != "krun_free_ctx ctx=0" {
		t.Errorf("Configure(passt plan) last call = %q, want the context freed", last)
	}
	p := fullPlan()
	p.Network = launch.Network{Mode: "tsi"}
	if _, err := Configure(l, p); err != nil {
		t.Errorf("Configure(tsi plan) = %v, want nil", err)
	}
}

// Logging set up earlier in the process (InitLog, or a first Configure) is
// not an error: the log level step is skipped.
func TestConfigureAfterLoggingSetUp(t *testing.T) {
	l, log := openDouble(t)
	if err := l.InitLog(libkrun.LogTargetDefault, libkrun.LogDebug, libkrun.LogStyleNever, libkrun.LogOptionNoEnv); err != nil {
		t.Fatal(err)
	}
	p := &launch.Plan{Version: launch.Version, VMM: "krun", VCPUs: 1, RAMMiB: 128, Root: "/r", ExecPath: "/init", Network: launch.Network{Mode: "none"}, LogLevel: "trace"}
	for range 2 {
		if _, err := Configure(l, p); err != nil {
			t.Fatalf("Configure() after InitLog() = %v, want nil", err)
		}
	}
	got := krundouble.Calls(t, log)
	if got[0] != "krun_init_log fd=-1 level=4 style=2 options=1" || strings.Contains(strings.Join(got, "\n"), "krun_set_log_level") {
		t.Errorf("calls = %q, want InitLog's and no krun_set_log_level", got)
	}
}

// BenchmarkConfigure measures one full Configure+FreeCtx through purego
// against the double (its log disabled).
func BenchmarkConfigure(b *testing.B) {
	l, err := libkrun.Open(krundouble.Build(b))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.Setenv("KRUN_DOUBLE_LOG", "")
	p := fullPlan()
	for b.Loop() {
		ctx, err := Configure(l, p)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.FreeCtx(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// With passt started by the helper, the net device is on the VM's end of
// its socketpair: path NULL, the fd given.
func TestConfigureNetFD(t *testing.T) {
	l, log := openRelease(t, 19)
	p := fullPlan()
	p.Network.Socket, p.Network.Passt = "", &launch.Passt{Path: "/usr/bin/passt"}
	if _, err := ConfigureNet(l, p, 7); err != nil {
		t.Fatalf("ConfigureNet(fd 7) = %v", err)
	}
	want := `krun_add_net_unixstream ctx=0 path=NULL fd=7 mac=5a:94:ef:e4:0c:ee features=19587 flags=2`
	if got := krundouble.Calls(t, log); !slices.Contains(got, want) {
		t.Errorf("calls = %q, want %q among them", got, want)
	}
}

// With loftd's egress network the net device is on the netstack's socket
// as it is on passt's, without the DHCP flag: the netstack serves no DHCP
// and the guest init sets the fixed addresses.
func TestConfigureNetFDEgress(t *testing.T) {
	l, log := openRelease(t, 19)
	p := fullPlan()
	p.Network = launch.Network{Mode: launch.NetworkEgress, MAC: p.Network.MAC, Egress: &launch.Egress{Exe: "/usr/bin/loftd", Allow: []string{"example.com"}}}
	if _, err := ConfigureNet(l, p, 7); err != nil {
		t.Fatalf("ConfigureNet(egress, fd 7) = %v", err)
	}
	want := `krun_add_net_unixstream ctx=0 path=NULL fd=7 mac=5a:94:ef:e4:0c:ee features=19587 flags=0`
	if got := krundouble.Calls(t, log); !slices.Contains(got, want) {
		t.Errorf("calls = %q, want %q among them", got, want)
	}
	if _, err := ConfigureNet(l, p, -1); err == nil || !strings.Contains(err.Error(), "network egress without a socket") {
		t.Errorf("ConfigureNet(egress, no fd) = %v, want an error naming the missing socket", err)
	}
}

// tcp is a publish of one TCP port on every address.
func tcp(host, guest int) launch.Publish {
	return launch.Publish{HostFirst: host, HostLast: host, GuestFirst: guest, GuestLast: guest, Proto: launch.TCP}
}

// PortMap renders typed publishes in libkrun's own "HOST:GUEST" form, a
// pair per port, and refuses what the form cannot say.
func TestPortMap(t *testing.T) {
	tests := []struct {
		name    string
		pubs    []launch.Publish
		want    []string
		wantErr string
	}{
		{"nothing: an empty map, never nil", nil, []string{}, ""},
		{"single ports", []launch.Publish{tcp(8080, 80), tcp(2222, 22)}, []string{"8080:80", "2222:22"}, ""},
		{"a range, a pair per port", []launch.Publish{{HostFirst: 8000, HostLast: 8002, GuestFirst: 80, GuestLast: 82, Proto: launch.TCP}},
			[]string{"8000:80", "8001:81", "8002:82"}, ""},
		{"udp", []launch.Publish{{HostFirst: 53, HostLast: 53, GuestFirst: 53, GuestLast: 53, Proto: launch.UDP}}, nil, "carries TCP on every address only"},
		{"an address", []launch.Publish{{HostIP: "127.0.0.1", HostFirst: 80, HostLast: 80, GuestFirst: 80, GuestLast: 80, Proto: launch.TCP}}, nil, "publish 127.0.0.1:80:80/tcp"},
	}
	for _, tt := range tests {
		got, err := PortMap(tt.pubs)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: PortMap() = %q, %v; want an error containing %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) || got == nil {
			t.Errorf("%s: PortMap() = %#v, %v; want %#v", tt.name, got, err, tt.want)
		}
	}
}
