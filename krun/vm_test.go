package krun

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fullVM fills every field of VM.
func fullVM() VM {
	return VM{
		LogLevel:   LogWarn,
		VCPUs:      4,
		RAMMiB:     2048,
		NestedVirt: true,
		Root:       "/state/tasks/t1/rootfs",
		Disks: []Disk{
			{ID: "loftd-nix", Path: "/state/ws/nix.raw"},
			{ID: "loftd-containers", Path: "/state/ws/containers.raw", ReadOnly: true},
		},
		Shares: []Share{{Tag: "loftd-workspace", Path: "/home/u/project"}},
		Net: &Net{
			SocketPath: "/run/user/1000/passt.sock",
			MAC:        "5a:94:ef:e4:0c:ee",
			Features:   NetFeaturesCompat,
			Flags:      NetFlagDHCPClient,
		},
		PortMap:    []string{"8080:80", "2222:22"},
		VsockPorts: []VsockPort{{Port: 1024, Path: "/state/tasks/t1/status.sock", Listen: true}, {Port: 1025, Path: "/state/tasks/t1/log.sock"}},
		Console: Console{
			DisableImplicit: true,
			Default:         &ConsoleFDs{Stdin: 0, Stdout: 1, Stderr: 2},
		},
		Rlimits:  []string{"7=1024:4096", "6=4096:8192"},
		Workdir:  "/workspace",
		ExecPath: "/usr/libexec/loftd-guest-init",
		Argv:     []string{"enter", "--profile"},
		Env:      []string{"LOFTD_MODE=enter", "TERM=xterm-256color"},
	}
}

func TestConfigureCallSequence(t *testing.T) {
	byFD := fullVM()
	byFD.Net = &Net{FD: 5, MAC: "02:00:00:00:00:01"}
	byFD.PortMap = nil
	tests := []struct {
		name string
		vm   VM
		want []string
	}{{
		name: "every field",
		vm:   fullVM(),
		want: []string{
			`krun_set_log_level level=2`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=7 vcpus=4 ram_mib=2048`,
			`krun_set_nested_virt ctx=7 enabled=1`,
			`krun_set_root ctx=7 path="/state/tasks/t1/rootfs"`,
			`krun_add_disk ctx=7 block_id="loftd-nix" path="/state/ws/nix.raw" read_only=0`,
			`krun_add_disk ctx=7 block_id="loftd-containers" path="/state/ws/containers.raw" read_only=1`,
			`krun_add_virtiofs ctx=7 tag="loftd-workspace" path="/home/u/project"`,
			`krun_add_net_unixstream ctx=7 path="/run/user/1000/passt.sock" fd=-1 mac=5a:94:ef:e4:0c:ee features=19587 flags=2`,
			`krun_set_port_map ctx=7 port_map=["8080:80","2222:22"]`,
			`krun_add_vsock_port2 ctx=7 port=1024 path="/state/tasks/t1/status.sock" listen=1`,
			`krun_add_vsock_port2 ctx=7 port=1025 path="/state/tasks/t1/log.sock" listen=0`,
			`krun_disable_implicit_console ctx=7`,
			`krun_add_virtio_console_default ctx=7 in=0 out=1 err=2`,
			`krun_set_rlimits ctx=7 rlimits=["7=1024:4096","6=4096:8192"]`,
			`krun_set_workdir ctx=7 path="/workspace"`,
			`krun_set_exec ctx=7 path="/usr/libexec/loftd-guest-init" argv=["enter","--profile"] env=["LOFTD_MODE=enter","TERM=xterm-256color"]`,
		},
	}, {
		name: "net by fd, no port map",
		vm:   byFD,
		want: []string{
			`krun_set_log_level level=2`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=7 vcpus=4 ram_mib=2048`,
			`krun_set_nested_virt ctx=7 enabled=1`,
			`krun_set_root ctx=7 path="/state/tasks/t1/rootfs"`,
			`krun_add_disk ctx=7 block_id="loftd-nix" path="/state/ws/nix.raw" read_only=0`,
			`krun_add_disk ctx=7 block_id="loftd-containers" path="/state/ws/containers.raw" read_only=1`,
			`krun_add_virtiofs ctx=7 tag="loftd-workspace" path="/home/u/project"`,
			`krun_add_net_unixstream ctx=7 path=NULL fd=5 mac=02:00:00:00:00:01 features=0 flags=0`,
			`krun_add_vsock_port2 ctx=7 port=1024 path="/state/tasks/t1/status.sock" listen=1`,
			`krun_add_vsock_port2 ctx=7 port=1025 path="/state/tasks/t1/log.sock" listen=0`,
			`krun_disable_implicit_console ctx=7`,
			`krun_add_virtio_console_default ctx=7 in=0 out=1 err=2`,
			`krun_set_rlimits ctx=7 rlimits=["7=1024:4096","6=4096:8192"]`,
			`krun_set_workdir ctx=7 path="/workspace"`,
			`krun_set_exec ctx=7 path="/usr/libexec/loftd-guest-init" argv=["enter","--profile"] env=["LOFTD_MODE=enter","TERM=xterm-256color"]`,
		},
	}, {
		name: "minimal: no env leaks from the host",
		vm:   VM{VCPUs: 1, RAMMiB: 512, Root: "/r", ExecPath: "/init"},
		want: []string{
			`krun_set_log_level level=0`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=7 vcpus=1 ram_mib=512`,
			`krun_set_root ctx=7 path="/r"`,
			`krun_set_exec ctx=7 path="/init" argv=[] env=[]`,
		},
	}, {
		name: "empty port map exposes nothing; env without exec",
		vm:   VM{VCPUs: 2, RAMMiB: 1024, Root: "/r", PortMap: []string{}, Env: []string{"A=1"}},
		want: []string{
			`krun_set_log_level level=0`,
			`krun_create_ctx`,
			`krun_set_vm_config ctx=7 vcpus=2 ram_mib=1024`,
			`krun_set_root ctx=7 path="/r"`,
			`krun_set_port_map ctx=7 port_map=[]`,
			`krun_set_env ctx=7 env=["A=1"]`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh library each: libkrun sets up logging once per load.
			l, log := openDouble(t)
			ctx, err := l.Configure(tt.vm)
			if err != nil {
				t.Fatalf("Configure(%s) = %v, want nil", tt.name, err)
			}
			if ctx != 7 {
				t.Errorf("Configure(%s) ctx = %d, want 7", tt.name, ctx)
			}
			compareCalls(t, "Configure("+tt.name+")", calls(t, log), tt.want)
		})
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
		{"krun_add_net_unixstream", "net 5a:94:ef:e4:0c:ee: krun_add_net_unixstream: invalid argument", true},
		{"krun_set_exec", "exec /usr/libexec/loftd-guest-init: krun_set_exec: invalid argument", true},
	}
	for _, tt := range tests {
		t.Run(tt.fail, func(t *testing.T) {
			l, log := openDouble(t)
			t.Setenv("KRUN_DOUBLE_FAIL", tt.fail)
			_, err := l.Configure(fullVM())
			if err == nil || err.Error() != tt.wantMsg {
				t.Fatalf("Configure() with %s failing = %v, want %q", tt.fail, err, tt.wantMsg)
			}
			var kerr *Error
			if !errors.As(err, &kerr) || kerr.Op != tt.fail || kerr.Errno != syscall.EINVAL {
				t.Errorf("Configure() error = %#v, want *Error{Op: %q, Errno: EINVAL}", kerr, tt.fail)
			}
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("errors.Is(%v, EINVAL) = false, want true", err)
			}
			got := calls(t, log)
			last := got[len(got)-1]
			if freed := last == "krun_free_ctx ctx=7"; freed != tt.freed {
				t.Errorf("Configure() with %s failing: last call %q, want context freed = %v", tt.fail, last, tt.freed)
			}
		})
	}
}

func TestConfigureRejectsBadNet(t *testing.T) {
	tests := []struct {
		name string
		net  Net
		want string
	}{
		{"path and fd", Net{SocketPath: "/s", FD: 4, MAC: "02:00:00:00:00:01"}, "net: set exactly one of socket path"},
		{"neither", Net{MAC: "02:00:00:00:00:01"}, "net: set exactly one of socket path"},
		{"bad MAC", Net{FD: 4, MAC: "02:00:00:00:00"}, `net: MAC "02:00:00:00:00" is not a 6-byte address`},
		{"EUI-64", Net{FD: 4, MAC: "02:00:00:00:00:00:00:01"}, "is not a 6-byte address"},
	}
	l, _ := openDouble(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := recordCalls(t)
			vm := fullVM()
			vm.Net = &tt.net
			_, err := l.Configure(vm)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Configure(net %+v) = %v, want error containing %q", tt.net, err, tt.want)
			}
			if got := calls(t, log); got != nil {
				t.Errorf("Configure(net %+v) made calls %q, want none", tt.net, got)
			}
		})
	}
}

func TestVMJSON(t *testing.T) {
	// The wire format is pinned: a changed tag or field shows here.
	const want = `{"log_level":2,"vcpus":4,"ram_mib":2048,"nested_virt":true,` +
		`"root":"/state/tasks/t1/rootfs",` +
		`"disks":[{"id":"loftd-nix","path":"/state/ws/nix.raw"},{"id":"loftd-containers","path":"/state/ws/containers.raw","read_only":true}],` +
		`"shares":[{"tag":"loftd-workspace","path":"/home/u/project"}],` +
		`"net":{"socket_path":"/run/user/1000/passt.sock","mac":"5a:94:ef:e4:0c:ee","features":19587,"flags":2},` +
		`"port_map":["8080:80","2222:22"],` +
		`"vsock_ports":[{"port":1024,"path":"/state/tasks/t1/status.sock","listen":true},{"port":1025,"path":"/state/tasks/t1/log.sock"}],` +
		`"console":{"disable_implicit":true,"default":{"stdin":0,"stdout":1,"stderr":2}},` +
		`"rlimits":["7=1024:4096","6=4096:8192"],"workdir":"/workspace",` +
		`"exec_path":"/usr/libexec/loftd-guest-init","argv":["enter","--profile"],` +
		`"env":["LOFTD_MODE=enter","TERM=xterm-256color"]}`
	data, err := json.Marshal(fullVM())
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("json.Marshal(fullVM()) =\n%s\nwant\n%s", data, want)
	}
	var back VM
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, fullVM()) {
		t.Errorf("json round trip = %+v, want %+v", back, fullVM())
	}
}

func TestVMJSONKeepsNilPortMapApart(t *testing.T) {
	// nil and empty port maps mean different things to libkrun.
	tests := []struct {
		portMap []string
		want    string
	}{
		{nil, `null`},
		{[]string{}, `[]`},
	}
	for _, tt := range tests {
		data, err := json.Marshal(VM{PortMap: tt.portMap})
		if err != nil {
			t.Fatal(err)
		}
		var back VM
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if (back.PortMap == nil) != (tt.portMap == nil) || !strings.Contains(string(data), `"port_map":`+tt.want) {
			t.Errorf("json round trip of PortMap %#v = %#v (%s), want %s", tt.portMap, back.PortMap, data, tt.want)
		}
	}
}
