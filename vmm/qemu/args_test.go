package qemu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestArgs pins the whole QEMU command line for a config that uses every
// field, so a change to it is a visible diff here.
func TestArgs(t *testing.T) {
	cfg := Config{
		Accel: "tcg", VCPUs: 2, MemMiB: 1024, Kernel: "/k.elf", Root: "/task/rootfs",
		Init:   "/.loftd/guest-init",
		Shares: []Share{{Tag: "loftd-workspace", Path: "/home/u/proj"}},
		Disks:  []Disk{{ID: "loftd-nix", Path: "/ws/nix.raw"}, {ID: "ro", Path: "/a,b.raw", ReadOnly: true}},
	}
	got := Args(cfg, []string{"/run/vfs0.sock", "/run/vfs1.sock"}, "/run/console.log")
	want := []string{
		"-accel", "tcg",
		"-M", "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=off",
		"-cpu", "max", "-smp", "2", "-m", "1024",
		"-object", "memory-backend-memfd,id=mem,size=1024M,share=on",
		"-machine", "memory-backend=mem",
		"-global", "virtio-mmio.force-legacy=false",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-kernel", "/k.elf",
		"-append", "console=hvc0 root=/dev/root rootfstype=virtiofs rw init=/.loftd/guest-init reboot=t panic=-1 quiet",
		"-chardev", "socket,id=fs0,path=/run/vfs0.sock", "-device", "vhost-user-fs-device,chardev=fs0,tag=/dev/root",
		"-chardev", "socket,id=fs1,path=/run/vfs1.sock", "-device", "vhost-user-fs-device,chardev=fs1,tag=loftd-workspace",
		"-drive", "file=/ws/nix.raw,if=none,id=blk0,format=raw", "-device", "virtio-blk-device,drive=blk0,serial=loftd-nix",
		"-drive", "file=/a,,b.raw,if=none,id=blk1,format=raw,readonly=on", "-device", "virtio-blk-device,drive=blk1,serial=ro",
		"-device", "virtio-serial-device",
		"-chardev", "file,id=con,path=/run/console.log", "-device", "virtconsole,chardev=con",
		"-chardev", "socket,id=port0,fd=3", "-device", "virtserialport,chardev=port0,name=krun-stdin",
		"-chardev", "socket,id=port1,fd=4", "-device", "virtserialport,chardev=port1,name=krun-stdout",
		"-chardev", "socket,id=port2,fd=5", "-device", "virtserialport,chardev=port2,name=krun-stderr",
		"-chardev", "socket,id=port3,fd=6", "-device", "virtserialport,chardev=port3,name=loftd-status",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Args() =\n  %s\nwant\n  %s", strings.Join(got, " "), strings.Join(want, " "))
	}
	cfg.Accel = "kvm"
	if got := Args(cfg, []string{"a", "b"}, "c"); !slices.Contains(got, "host") {
		t.Errorf("Args(kvm) = %q, want -cpu host", got)
	}
}

func TestVirtiofsdArgs(t *testing.T) {
	tests := []struct {
		rust bool
		want []string
	}{
		{false, []string{"--fd=3", "-o", "source=/r", "-o", "cache=auto", "-o", "sandbox=chroot", "-o", "xattr"}},
		{true, []string{"--fd=3", "--shared-dir", "/r", "--cache", "auto", "--sandbox", "chroot", "--xattr"}},
	}
	for _, tt := range tests {
		if got := virtiofsdArgs(tt.rust, "/r"); !slices.Equal(got, tt.want) {
			t.Errorf("virtiofsdArgs(%v) = %q, want %q", tt.rust, got, tt.want)
		}
	}
}

func TestStatus(t *testing.T) {
	r := &runner{cfg: Config{RunDir: t.TempDir()}, log: nil}
	tests := []struct {
		text    string
		want    int
		wantErr bool
	}{
		{"0\n", 0, false},
		{"137\n", 137, false},
		{"", 0, true},
		{"x\n", 0, true},
		{"300\n", 0, true},
	}
	for _, tt := range tests {
		got, err := r.status(&child{}, tt.text)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("status(%q) = %d, %v, want %d, error %v", tt.text, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPickAccelEnv(t *testing.T) {
	t.Setenv(AccelEnv, "tcg")
	if got, _ := PickAccel("", "/nonexistent/qemu"); got != "tcg" {
		t.Errorf("PickAccel with %s=tcg = %q, want tcg", AccelEnv, got)
	}
	if got, _ := PickAccel("kvm", ""); got != "kvm" {
		t.Errorf("PickAccel(kvm) = %q, want kvm", got)
	}
}

// TestProbeQEMUKVM runs the QEMU half of the KVM probe against fake QEMUs
// (shell scripts: the boundary is QEMU's exit status and output): one that
// aborts like QEMU on a nested host, one that hangs, one that works.
func TestProbeQEMUKVM(t *testing.T) {
	dir := t.TempDir()
	defer func(d time.Duration) { qemuProbeTimeout = d }(qemuProbeTimeout)
	qemuProbeTimeout = time.Second
	tests := []struct {
		name, script, wantErr string
	}{
		{"msr abort", "echo 'qemu: error: failed to set MSR 0x10a to 0x69' >&2; exit 134", "failed to set MSR"},
		{"hang", "exec sleep 60", "kvm probe"},
		{"works", "cat >/dev/null; exit 0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			os.WriteFile(fake, []byte("#!/bin/sh\n"+tt.script+"\n"), 0o755)
			err := probeQEMUKVM(fake)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("probeQEMUKVM(%s) = %v, want error containing %q", tt.name, err, tt.wantErr)
			}
		})
	}
}

// TestProbeReal checks the real probe ends (a hang would fail the test by
// the binary's timeout) and says what it chose.
func TestProbeReal(t *testing.T) {
	if _, err := FindQEMU(""); err != nil {
		t.Skip(err)
	}
	r, err := Probe()
	t.Logf("Probe() = %+v, %v", r, err)
	if err == nil && r.Accel != "kvm" && r.Accel != "tcg" {
		t.Errorf("Probe().Accel = %q, want kvm or tcg", r.Accel)
	}
}
