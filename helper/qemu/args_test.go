package qemu

import (
	"context"
	"fmt"
	"github.com/loftd/loftd/libkrun/krunfw"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/helper/krunline"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/launch"
)

// TestArgs pins the whole QEMU command line for a config that uses every
// field, so a change to it is a visible diff here.
func TestArgs(t *testing.T) {
	plan := &launch.Plan{
		VCPUs: 2, RAMMiB: 1024, Root: "/task/rootfs", ExecPath: "/.loftd/guest-init",
		Shares: []launch.Share{{Tag: "loftd-workspace", Path: "/home/u/proj"}},
		Disks:  []launch.Disk{{ID: "loftd-nix", Path: "/ws/nix.raw"}, {ID: "ro", Path: "/a,b.raw", ReadOnly: true}},
	}
	cfg := Config{Plan: plan, Accel: "tcg", Kernel: "/k.elf", Sandbox: confine.Enforce}
	got := Args(cfg)
	want := []string{
		"-accel", "tcg,thread=single",
		"-M", "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=off",
		"-cpu", "max", "-smp", "2", "-m", "1024",
		"-object", "memory-backend-memfd,id=mem,size=1024M,share=on",
		"-machine", "memory-backend=mem",
		"-global", "virtio-mmio.force-legacy=false",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-kernel", "/proc/self/fd/15",
		"-append", "console=hvc0 root=/dev/root rootfstype=virtiofs rw init=/.loftd/guest-init reboot=t panic=-1 quiet page_reporting.page_reporting_order=3 lpj=550000 init_on_alloc=1",
		"-chardev", "socket,id=fs0,fd=8", "-device", "vhost-user-fs-device,chardev=fs0,tag=/dev/root",
		"-chardev", "socket,id=fs1,fd=9", "-device", "vhost-user-fs-device,chardev=fs1,tag=loftd-workspace",
		"-add-fd", "fd=10,set=1", "-add-fd", "fd=11,set=1",
		"-drive", "file=/dev/fdset/1,if=none,id=blk0,format=raw,werror=report,rerror=report", "-device", "virtio-blk-device,drive=blk0,serial=loftd-nix",
		"-add-fd", "fd=12,set=2", "-add-fd", "fd=13,set=2",
		"-drive", "file=/dev/fdset/2,if=none,id=blk1,format=raw,werror=report,rerror=report,readonly=on", "-device", "virtio-blk-device,drive=blk1,serial=ro",
		"-device", "virtio-balloon-device,free-page-reporting=on",
		"-add-fd", "fd=14,set=3", "-device", "virtio-serial-device",
		"-chardev", "file,id=con,append=on,path=/dev/fdset/3", "-device", "virtconsole,chardev=con",
		"-chardev", "socket,id=port0,fd=3", "-device", "virtserialport,chardev=port0,name=krun-stdin",
		"-chardev", "socket,id=port1,fd=4", "-device", "virtserialport,chardev=port1,name=krun-stdout",
		"-chardev", "socket,id=port2,fd=5", "-device", "virtserialport,chardev=port2,name=krun-stderr",
		"-chardev", "socket,id=port3,fd=6", "-device", "virtserialport,chardev=port3,name=loftd-status",
		"-chardev", "socket,id=port4,fd=7", "-device", "virtserialport,chardev=port4,name=loftd-control",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Args() =\n  %s\nwant\n  %s", strings.Join(got, " "), strings.Join(want, " "))
	}
	// The krun-init mode boots with libkrun's line, QEMU's own device
	// entries placed before its " -- " (QEMU would append them after it),
	// and under TCG the zeroed freed pages (tcgFreshCode).
	krun := *plan
	krun.KrunInit = "/host/init.krun"
	got = Args(Config{Plan: &krun, Accel: "tcg", Kernel: "/k.elf"})
	wantLine := krunline.Prolog + "       virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11" +
		" virtio_mmio.device=512@0xfeb00a00:10 virtio_mmio.device=512@0xfeb00800:9 virtio_mmio.device=512@0xfeb00600:8 virtio_mmio.device=512@0xfeb00400:7 init_on_alloc=1  -- "
	if i := slices.Index(got, "-append"); got[3] != want[3]+",auto-kernel-cmdline=off" || i < 0 || got[i+1] != wantLine {
		t.Errorf("Args(krun init) = %q, want -M %s,auto-kernel-cmdline=off and -append %q", got, want[3], wantLine)
	}
	// Only plain TCG gets thread=single; KVM and a caller's own TCG
	// options keep what they asked for. Only TCG has a delay loop to
	// preset (lpj).
	for _, tt := range []struct {
		accel, wantAccel, wantCPU string
		lpj                       bool
	}{
		{"kvm", "kvm", "host", false},
		{"tcg,thread=multi", "tcg,thread=multi", "max", true},
	} {
		cfg.Accel = tt.accel
		got := Args(cfg)
		if !slices.Equal(got[:2], []string{"-accel", tt.wantAccel}) || got[5] != tt.wantCPU {
			t.Errorf("Args(accel %s) = %q, want -accel %s ... -cpu %s", tt.accel, got[:6], tt.wantAccel, tt.wantCPU)
		}
		line := got[slices.Index(got, "-append")+1]
		if strings.Contains(line, " lpj=") != tt.lpj {
			t.Errorf("Args(accel %s): kernel line %q, want lpj= %v", tt.accel, line, tt.lpj)
		}
	}
}

// TestArgsHoldNoHostPath: whatever bytes the host's paths hold (the state
// directory, --rootfs, the workspace, a volume, a disk), no QEMU argument
// carries them: QEMU gets fds, so a path cannot add or break an option.
func TestArgsHoldNoHostPath(t *testing.T) {
	for _, name := range []string{"a,b", "x,file=/etc/shadow", "c=d", "e:f", `g\h`, "i\nj", "-k"} {
		dir := "/s/" + name
		plan := &launch.Plan{
			VCPUs: 1, RAMMiB: 512, Root: dir + "/rootfs", ExecPath: "/.loftd/guest-init",
			Shares:  []launch.Share{{Tag: "loftd-workspace", Path: dir + "/ws"}, {Tag: "loftd-vol0", Path: dir + "/vol"}},
			Disks:   []launch.Disk{{ID: "loftd-nix", Path: dir + "/nix.raw"}, {ID: "ro", Path: dir + "/ro.raw", ReadOnly: true}},
			Network: launch.Network{Mode: "passt", MAC: "5a:94:ef:e4:0c:ee"},
		}
		for _, net := range []*os.File{nil, os.Stdin} {
			cfg := Config{Plan: plan, Accel: "tcg", Kernel: dir + "/kernels/k.elf", RunDir: dir + "/task", Net: net}
			args := Args(cfg)
			for _, arg := range args {
				if strings.Contains(arg, dir) {
					t.Errorf("Args(paths under %q) has %q, want no host path in QEMU's arguments", dir, arg)
				}
			}
		}
	}
}

func TestVirtiofsdArgs(t *testing.T) {
	c := []string{"--fd=3", "-o", "source=/proc/self/fd/4/", "-o", "cache=auto", "-o", "sandbox=chroot", "-o", "xattr"}
	rust := []string{"--fd=3", "--shared-dir", "/proc/self/fd/4/", "--cache", "auto", "--sandbox", "chroot", "--xattr", "--inode-file-handles=never"}
	tests := []struct {
		flavor      launch.VirtiofsdFlavor
		ro, guarded bool
		want        []string
	}{
		{launch.VirtiofsdC, false, false, c},
		{launch.VirtiofsdC, true, true, append(slices.Clone(c), "-o", "modcaps=-setfcap:-mknod:-fsetid")},
		{launch.VirtiofsdRust, false, false, rust},
		{launch.VirtiofsdRust, true, false, append(slices.Clone(rust), "--readonly")},
		{launch.VirtiofsdRust, true, true, append(slices.Clone(rust), "--readonly", "--modcaps=-setfcap:-mknod:-fsetid")},
	}
	for _, tt := range tests {
		if got := virtiofsdArgs(tt.flavor, 4, tt.ro, tt.guarded); !slices.Equal(got, tt.want) {
			t.Errorf("virtiofsdArgs(%s, ro %v, guarded %v) = %q, want %q", tt.flavor, tt.ro, tt.guarded, got, tt.want)
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
		got, err := r.status(nil, tt.text)
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

// TestProbeReal checks the real probe's verdict against an independent
// check: QEMU on another machine type (pc) asked "info kvm" from its
// monitor. Where that says KVM is enabled the probe must pick kvm; where it
// does not (no /dev/kvm, or a nested host where QEMU aborts on an MSR) the
// probe must pick tcg and its reason must name the KVM failure.
func TestProbeReal(t *testing.T) {
	testenv.RequireVM(t) // Probe also looks for virtiofsd
	t.Setenv(AccelEnv, "")
	r, err := Probe()
	if err != nil {
		t.Fatalf("Probe() = %v", err)
	}
	kvm := kvmWorks(t, r.QEMU)
	t.Logf("Probe() = %+v; libkrunfw's kernel runs with KVM: %v", r, kvm)
	switch {
	case kvm && r.Accel != "kvm":
		t.Errorf("Probe().Accel = %q (%s), want kvm: QEMU runs with KVM here", r.Accel, r.AccelReason)
	case !kvm && r.Accel != "tcg":
		t.Errorf("Probe().Accel = %q, want tcg: QEMU cannot use KVM here", r.Accel)
	case !kvm && !strings.HasPrefix(r.AccelReason, "kvm probe: "):
		t.Errorf("Probe().AccelReason = %q, want the KVM failure (\"kvm probe: ...\")", r.AccelReason)
	}
}

// kvmWorks boots libkrunfw's kernel with KVM and no root, independently of
// Probe: a kernel that runs panics ("VFS: Unable to mount root fs") within
// seconds, and with -no-reboot QEMU then exits. A /dev/kvm that cannot run
// that kernel never gets there: QEMU refuses KVM at once, aborts at vCPU
// reset, or (a PVM /dev/kvm) spins until the deadline. A paused QEMU's
// "info kvm" is not enough: it says enabled on a PVM host.
func kvmWorks(t *testing.T, qemu string) bool {
	vm := testenv.RequireVM(t)
	dir := t.TempDir()
	kernel, err := krunfw.KernelELF(vm.Krunfw, dir)
	if err != nil {
		t.Fatal(err)
	}
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "kvm", "-M", "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=off",
		"-cpu", "host", "-m", "256", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-kernel", kernel, "-append", "console=hvc0 panic=-1 reboot=t",
		"-device", "virtio-serial-device", "-chardev", "file,id=con,path="+console, "-device", "virtconsole,chardev=con")
	cmd.WaitDelay = time.Second
	_ = cmd.Run()
	log, _ := os.ReadFile(console)
	return ctx.Err() == nil && strings.Contains(string(log), "Kernel panic")
}

// TestRunBadConfig checks Run refuses, before starting anything, a config
// without a plan or with one the helper could not boot.
func TestRunBadConfig(t *testing.T) {
	good := launch.Plan{Version: launch.Version, VMM: "qemu", VCPUs: 1, RAMMiB: 512, Root: "/r", ExecPath: "/init"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"no plan", func(c *Config) { c.Plan = nil }, "Config.Plan is nil"},
		{"relative root", func(c *Config) { c.Plan.Root = "r" }, "not an absolute path"},
		{"no vCPU", func(c *Config) { c.Plan.VCPUs = 0 }, "below the minimum"},
		{"no kernel", func(c *Config) { c.Kernel = "" }, "Config.Kernel is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			cfg := Config{Plan: &p, Kernel: "/k", RunDir: t.TempDir(), QEMU: "/nonexistent/qemu"}
			tt.edit(&cfg)
			if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Run(%s) = %v, want an error containing %q", tt.name, err, tt.wantErr)
			}
		})
	}
}

// TestDeviceBudget: microvm has 8 virtio-mmio transports; the balloon is
// the device given up first, and a plan needing more than 8 without it is
// refused before QEMU starts.
func TestDeviceBudget(t *testing.T) {
	tests := []struct {
		shares, disks int
		net           bool
		wantBalloon   bool
		wantErr       bool
	}{
		{1, 2, true, true, false},   // root+ws, 2 disks, serial, net = 6, +balloon = 7
		{2, 2, true, true, false},   // 7 + balloon = 8
		{3, 2, true, false, false},  // 8: no room for the balloon
		{4, 2, true, false, true},   // 9: refused
		{4, 2, false, false, false}, // --network none frees one
	}
	for _, tt := range tests {
		p := &launch.Plan{Root: "/r"}
		for i := range tt.shares {
			p.Shares = append(p.Shares, launch.Share{Tag: fmt.Sprintf("s%d", i), Path: "/s"})
		}
		for i := range tt.disks {
			p.Disks = append(p.Disks, launch.Disk{ID: fmt.Sprintf("d%d", i), Path: "/d"})
		}
		c := Config{Plan: p}
		if tt.net {
			c.Net = os.Stdin // any file: the network device is there
		}
		if got := c.balloon(); got != tt.wantBalloon {
			t.Errorf("%d shares, %d disks, net %v: balloon %v, want %v", tt.shares, tt.disks, tt.net, got, tt.wantBalloon)
		}
		if err := c.checkDevices(); (err != nil) != tt.wantErr {
			t.Errorf("%d shares, %d disks, net %v: checkDevices = %v, want error %v", tt.shares, tt.disks, tt.net, err, tt.wantErr)
		}
	}
}
