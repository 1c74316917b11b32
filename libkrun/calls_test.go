package libkrun

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// TestCalls makes every krun_* call once through purego and compares what
// the double received: argument order, types, NULL versus empty arrays.
func TestCalls(t *testing.T) {
	tests := []struct {
		name  string
		setup func(l *Lib, c Ctx) error // before the call, not recorded
		call  func(l *Lib, c Ctx) error
		want  string // C stands for the context's ID
	}{
		{"SetLogLevel", nil, func(l *Lib, c Ctx) error { return l.SetLogLevel(LogWarn) }, `krun_set_log_level level=2`},
		{"CreateCtx", nil, func(l *Lib, c Ctx) error { _, err := l.CreateCtx(); return err }, `krun_create_ctx`},
		{"FreeCtx", nil, func(l *Lib, c Ctx) error { return l.FreeCtx(c) }, `krun_free_ctx ctx=C`},
		{"SetVMConfig", nil, func(l *Lib, c Ctx) error { return l.SetVMConfig(c, 255, 2048) }, `krun_set_vm_config ctx=C vcpus=255 ram_mib=2048`},
		{"SetNestedVirt", nil, func(l *Lib, c Ctx) error { return l.SetNestedVirt(c, true) }, `krun_set_nested_virt ctx=C enabled=1`},
		{"SetRoot", nil, func(l *Lib, c Ctx) error { return l.SetRoot(c, "/state/rootfs") }, `krun_set_root ctx=C path="/state/rootfs"`},
		{"AddDisk", nil, func(l *Lib, c Ctx) error { return l.AddDisk(c, "loftd-nix", "/s/nix.raw", false) }, `krun_add_disk ctx=C block_id="loftd-nix" path="/s/nix.raw" read_only=0`},
		{"AddDisk read-only", nil, func(l *Lib, c Ctx) error { return l.AddDisk(c, "ro", "/s/c.raw", true) }, `krun_add_disk ctx=C block_id="ro" path="/s/c.raw" read_only=1`},
		{"AddVirtiofs", nil, func(l *Lib, c Ctx) error { return l.AddVirtiofs(c, "loftd-workspace", "/home/u/p") }, `krun_add_virtiofs ctx=C tag="loftd-workspace" path="/home/u/p"`},
		{"AddVirtiofs3 read-only", nil, func(l *Lib, c Ctx) error { return l.AddVirtiofs3(c, "loftd-vol0", "/srv/d", 0, true) }, `krun_add_virtiofs3 ctx=C tag="loftd-vol0" path="/srv/d" shm_size=0 read_only=1`},
		{"AddNetUnixstream by path", nil, func(l *Lib, c Ctx) error {
			return l.AddNetUnixstream(c, "/run/passt.sock", -1, [6]byte{0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee}, NetFeaturesCompat, NetFlagDHCPClient)
		}, `krun_add_net_unixstream ctx=C path="/run/passt.sock" fd=-1 mac=5a:94:ef:e4:0c:ee features=19587 flags=2`},
		{"AddNetUnixstream by fd", nil, func(l *Lib, c Ctx) error {
			return l.AddNetUnixstream(c, "", 5, [6]byte{2, 0, 0, 0, 0, 1}, 0, 0)
		}, `krun_add_net_unixstream ctx=C path=NULL fd=5 mac=02:00:00:00:00:01 features=0 flags=0`},
		{"SetPortMap", nil, func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{"8080:80", "2222:22"}) }, `krun_set_port_map ctx=C port_map=["8080:80","2222:22"]`},
		{"SetPortMap empty", nil, func(l *Lib, c Ctx) error { return l.SetPortMap(c, []string{}) }, `krun_set_port_map ctx=C port_map=[]`},
		{"AddVsockPort2", nil, func(l *Lib, c Ctx) error { return l.AddVsockPort2(c, 1024, "/s/status.sock", true) }, `krun_add_vsock_port2 ctx=C port=1024 path="/s/status.sock" listen=1`},
		{"DisableImplicitConsole", nil, func(l *Lib, c Ctx) error { return l.DisableImplicitConsole(c) }, `krun_disable_implicit_console ctx=C`},
		{"AddVirtioConsoleDefault", nil, func(l *Lib, c Ctx) error { return l.AddVirtioConsoleDefault(c, 0, 1, 2) }, `krun_add_virtio_console_default ctx=C in=0 out=1 err=2`},
		{"SetRlimits", nil, func(l *Lib, c Ctx) error { return l.SetRlimits(c, []string{"7=1024:4096"}) }, `krun_set_rlimits ctx=C rlimits=["7=1024:4096"]`},
		{"SetWorkdir", nil, func(l *Lib, c Ctx) error { return l.SetWorkdir(c, "/workspace") }, `krun_set_workdir ctx=C path="/workspace"`},
		{"SetExec", nil, func(l *Lib, c Ctx) error {
			return l.SetExec(c, "/init", []string{"enter", "--profile"}, []string{"A=1", "TERM=xterm"})
		}, `krun_set_exec ctx=C path="/init" argv=["enter","--profile"] env=["A=1","TERM=xterm"]`},
		{"SetExec empty", nil, func(l *Lib, c Ctx) error { return l.SetExec(c, "/init", []string{}, []string{}) }, `krun_set_exec ctx=C path="/init" argv=[] env=[]`},
		{"SetEnv", nil, func(l *Lib, c Ctx) error { return l.SetEnv(c, []string{"A=1"}) }, `krun_set_env ctx=C env=["A=1"]`},
		{"HasFeature", nil, func(l *Lib, c Ctx) error { _, err := l.HasFeature(FeatureBlk); return err }, `krun_has_feature feature=1`},
		{"MaxVCPUs", nil, func(l *Lib, c Ctx) error { _, err := l.MaxVCPUs(); return err }, `krun_get_max_vcpus`},
		{"DisableImplicitVsock", nil, func(l *Lib, c Ctx) error { return l.DisableImplicitVsock(c) }, `krun_disable_implicit_vsock ctx=C`},
		{"AddVsock", func(l *Lib, c Ctx) error { return l.DisableImplicitVsock(c) },
			func(l *Lib, c Ctx) error { return l.AddVsock(c, TSIHijackInet) }, `krun_add_vsock ctx=C tsi_features=1`},
		{"AddVirtioConsoleMultiport", nil, func(l *Lib, c Ctx) error { _, err := l.AddVirtioConsoleMultiport(c); return err }, `krun_add_virtio_console_multiport ctx=C`},
		{"AddConsolePortInout", func(l *Lib, c Ctx) error { _, err := l.AddVirtioConsoleMultiport(c); return err },
			func(l *Lib, c Ctx) error { return l.AddConsolePortInout(c, 0, "krun-stdin", 0, -1) }, `krun_add_console_port_inout ctx=C console=0 name="krun-stdin" in=0 out=-1`},
		{"FsAddOverlayFile", func(l *Lib, c Ctx) error { return l.SetRoot(c, "/r") },
			func(l *Lib, c Ctx) error {
				return l.FsAddOverlayFile(c, "/dev/root", ".krun_config.json", []byte("{}"), 0o644, false)
			},
			`krun_fs_add_overlay_file ctx=C tag="/dev/root" path=".krun_config.json" len=2 mode=644 one_shot=0`},
	}
	shared := buildDouble(t)
	open := func(t *testing.T, op string) *Lib {
		lib := shared
		if op == "krun_set_log_level" {
			// libkrun sets up logging once per load: a fresh library.
			lib = buildDouble(t)
		}
		l, err := Open(lib)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	// newCtx makes a context for the call, unless the call is about
	// contexts or the process-wide logger.
	newCtx := func(t *testing.T, l *Lib, op string, setup func(*Lib, Ctx) error) Ctx {
		switch op {
		case "krun_set_log_level", "krun_create_ctx":
			return 0
		}
		c, err := l.CreateCtx()
		if err != nil {
			t.Fatal(err)
		}
		if setup != nil {
			if err := setup(l, c); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, _, _ := strings.Cut(tt.want, " ")
			t.Setenv("KRUN_DOUBLE_LOG", "")
			l := open(t, op)
			c := newCtx(t, l, op, tt.setup)
			log := recordCalls(t)
			if err := tt.call(l, c); err != nil {
				t.Fatalf("%s = %v, want nil", tt.name, err)
			}
			compareCalls(t, tt.name, calls(t, log), []string{strings.ReplaceAll(tt.want, "ctx=C", fmt.Sprintf("ctx=%d", c))})
			l = open(t, op)
			c = newCtx(t, l, op, tt.setup)
			t.Setenv("KRUN_DOUBLE_FAIL", op)
			err := tt.call(l, c)
			var kerr *Error
			if !errors.As(err, &kerr) || kerr.Op != op || !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s with %s failing = %v, want *Error{Op: %q, Errno: EINVAL}", tt.name, op, err, op)
			}
		})
	}
}
