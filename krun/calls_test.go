package krun

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// TestCalls makes every krun_* call once through purego and compares what
// the double received: argument order, types, NULL versus empty arrays.
func TestCalls(t *testing.T) {
	tests := []struct {
		name string
		call func(l *Lib) error
		want string
	}{
		{"SetLogLevel", func(l *Lib) error { return l.SetLogLevel(LogWarn) }, `krun_set_log_level level=2`},
		{"CreateCtx", func(l *Lib) error { _, err := l.CreateCtx(); return err }, `krun_create_ctx`},
		{"FreeCtx", func(l *Lib) error { return l.FreeCtx(7) }, `krun_free_ctx ctx=7`},
		{"SetVMConfig", func(l *Lib) error { return l.SetVMConfig(7, 255, 2048) }, `krun_set_vm_config ctx=7 vcpus=255 ram_mib=2048`},
		{"SetNestedVirt", func(l *Lib) error { return l.SetNestedVirt(7, true) }, `krun_set_nested_virt ctx=7 enabled=1`},
		{"SetRoot", func(l *Lib) error { return l.SetRoot(7, "/state/rootfs") }, `krun_set_root ctx=7 path="/state/rootfs"`},
		{"AddDisk", func(l *Lib) error { return l.AddDisk(7, "loftd-nix", "/s/nix.raw", false) }, `krun_add_disk ctx=7 block_id="loftd-nix" path="/s/nix.raw" read_only=0`},
		{"AddDisk read-only", func(l *Lib) error { return l.AddDisk(7, "ro", "/s/c.raw", true) }, `krun_add_disk ctx=7 block_id="ro" path="/s/c.raw" read_only=1`},
		{"AddVirtiofs", func(l *Lib) error { return l.AddVirtiofs(7, "loftd-workspace", "/home/u/p") }, `krun_add_virtiofs ctx=7 tag="loftd-workspace" path="/home/u/p"`},
		{"AddNetUnixstream by path", func(l *Lib) error {
			return l.AddNetUnixstream(7, "/run/passt.sock", -1, [6]byte{0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee}, NetFeaturesCompat, NetFlagDHCPClient)
		}, `krun_add_net_unixstream ctx=7 path="/run/passt.sock" fd=-1 mac=5a:94:ef:e4:0c:ee features=19587 flags=2`},
		{"AddNetUnixstream by fd", func(l *Lib) error {
			return l.AddNetUnixstream(7, "", 5, [6]byte{2, 0, 0, 0, 0, 1}, 0, 0)
		}, `krun_add_net_unixstream ctx=7 path=NULL fd=5 mac=02:00:00:00:00:01 features=0 flags=0`},
		{"SetPortMap", func(l *Lib) error { return l.SetPortMap(7, []string{"8080:80", "2222:22"}) }, `krun_set_port_map ctx=7 port_map=["8080:80","2222:22"]`},
		{"SetPortMap empty", func(l *Lib) error { return l.SetPortMap(7, []string{}) }, `krun_set_port_map ctx=7 port_map=[]`},
		{"AddVsockPort2", func(l *Lib) error { return l.AddVsockPort2(7, 1024, "/s/status.sock", true) }, `krun_add_vsock_port2 ctx=7 port=1024 path="/s/status.sock" listen=1`},
		{"DisableImplicitConsole", func(l *Lib) error { return l.DisableImplicitConsole(7) }, `krun_disable_implicit_console ctx=7`},
		{"AddVirtioConsoleDefault", func(l *Lib) error { return l.AddVirtioConsoleDefault(7, 0, 1, 2) }, `krun_add_virtio_console_default ctx=7 in=0 out=1 err=2`},
		{"SetRlimits", func(l *Lib) error { return l.SetRlimits(7, []string{"7=1024:4096"}) }, `krun_set_rlimits ctx=7 rlimits=["7=1024:4096"]`},
		{"SetWorkdir", func(l *Lib) error { return l.SetWorkdir(7, "/workspace") }, `krun_set_workdir ctx=7 path="/workspace"`},
		{"SetExec", func(l *Lib) error {
			return l.SetExec(7, "/init", []string{"enter", "--profile"}, []string{"A=1", "TERM=xterm"})
		}, `krun_set_exec ctx=7 path="/init" argv=["enter","--profile"] env=["A=1","TERM=xterm"]`},
		{"SetExec empty", func(l *Lib) error { return l.SetExec(7, "/init", []string{}, []string{}) }, `krun_set_exec ctx=7 path="/init" argv=[] env=[]`},
		{"SetEnv", func(l *Lib) error { return l.SetEnv(7, []string{"A=1"}) }, `krun_set_env ctx=7 env=["A=1"]`},
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, _, _ := strings.Cut(tt.want, " ")
			log := recordCalls(t)
			if err := tt.call(open(t, op)); err != nil {
				t.Fatalf("%s = %v, want nil", tt.name, err)
			}
			compareCalls(t, tt.name, calls(t, log), []string{tt.want})
			t.Setenv("KRUN_DOUBLE_FAIL", op)
			err := tt.call(open(t, op))
			var kerr *Error
			if !errors.As(err, &kerr) || kerr.Op != op || !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s with %s failing = %v, want *Error{Op: %q, Errno: EINVAL}", tt.name, op, err, op)
			}
		})
	}
}
