package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/krunline"
	"github.com/loftd/loftd/launch"
)

// portNames are the virtio-serial ports, in the order their sockets are
// passed to QEMU as fds 3 to 7. Every VM has the control port (issue 19),
// whether or not anyone connects to it: the guest init serves SSH on it.
var portNames = []string{contract.PortStdin, contract.PortStdout, contract.PortStderr, contract.PortStatus, contract.PortControl}

// controlPort is PortControl's index in portNames.
const controlPort = 4

// firstPortFD is the fd of the first port socket in QEMU (ExtraFiles start at 3).
const firstPortFD = 3

// Args returns QEMU's arguments for cfg.Plan, booted with cfg's kernel and
// accelerator (resolved: Accel set). Every host file QEMU uses reaches it as
// an inherited fd (the layout is Config's fds): no option string holds a
// byte of a host path, so a state directory with ',' '=' ':' or a newline
// can neither break QEMU's option syntax nor add an option.
func Args(cfg Config) []string {
	p := cfg.Plan
	cpu := "max"
	if cfg.Accel == "kvm" {
		cpu = "host"
	}
	mem := strconv.FormatUint(uint64(p.RAMMiB), 10)
	// Without pit/pic/rtc TCG hangs; the libkrunfw kernel has no ACPI.
	machine := "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=off"
	cmdline := GuestCmdline(p.ExecPath, cfg.Accel)
	if p.KrunInit != "" {
		// libkrun's line ends in " -- ARGS"; QEMU would append its
		// device entries after it, where the kernel hands them to init
		// and never finds its devices: place them ourselves.
		machine += ",auto-kernel-cmdline=off"
		var extra []string
		if strings.HasPrefix(cfg.Accel, "tcg") {
			// libkrun's line runs under KVM only; under TCG its
			// guests need tcgFreshCode as ours do.
			extra = append(extra, tcgFreshCode)
		}
		cmdline = krunline.Cmdline(p, mmioDevices(cfg.devices()), extra...)
	}
	a := []string{
		"-accel", accelOpt(cfg.Accel),
		"-M", machine,
		"-cpu", cpu, "-smp", strconv.Itoa(p.VCPUs), "-m", mem,
		// vhost-user needs guest memory shared with virtiofsd.
		"-object", "memory-backend-memfd,id=mem,size=" + mem + "M,share=on",
		"-machine", "memory-backend=mem",
		// virtiofsd refuses legacy virtio-mmio.
		"-global", "virtio-mmio.force-legacy=false",
		"-nodefaults", "-no-user-config", "-nographic",
		// The guest ends by rebooting: make that QEMU's exit.
		"-no-reboot",
		"-kernel", fdPath(cfg.kernelFD()),
		"-append", cmdline,
	}
	for i, s := range cfg.shares() {
		id := fmt.Sprintf("fs%d", i)
		a = append(a, "-chardev", fmt.Sprintf("socket,id=%s,fd=%d", id, cfg.shareFD(i)),
			"-device", "vhost-user-fs-device,chardev="+id+",tag="+s.Tag)
	}
	for i, d := range p.Disks {
		fd := cfg.diskFD(i)
		a = append(a, "-add-fd", fmt.Sprintf("fd=%d,set=%d", fd, diskSet(i)), "-add-fd", fmt.Sprintf("fd=%d,set=%d", fd+1, diskSet(i)))
		a = append(a, diskArgs(i, diskSet(i), d)...)
	}
	if cfg.balloon() {
		a = append(a, balloonArgs()...)
	}
	a = append(a, "-add-fd", fmt.Sprintf("fd=%d,set=%d", cfg.consoleFD(), cfg.consoleSet()), "-device", "virtio-serial-device",
		"-chardev", "file,id=con,append=on,path="+fdSetPath(cfg.consoleSet()), "-device", "virtconsole,chardev=con")
	for i, name := range portNames {
		id := fmt.Sprintf("port%d", i)
		a = append(a, "-chardev", fmt.Sprintf("socket,id=%s,fd=%d", id, firstPortFD+i),
			"-device", "virtserialport,chardev="+id+",name="+name)
	}
	a = append(a, sandboxArgs(cfg.Sandbox)...)
	return append(a, netArgs(cfg.netFD(), p.Network.MAC)...)
}

// balloonArgs give the guest a balloon that reports free pages: the guest
// kernel (libkrunfw has CONFIG_PAGE_REPORTING and virtio_balloon) hands
// blocks it freed back in batches, and QEMU punches them out of the memfd,
// so --mem is a ceiling and a VM costs about what it uses now, not the most
// it ever used. libkrun always attaches the same device (builder.rs,
// attach_balloon_device), so both backends return memory alike.
func balloonArgs() []string {
	return []string{"-device", "virtio-balloon-device,free-page-reporting=on"}
}

// accelOpt is the -accel value for accel. Plain TCG runs one thread for all
// vCPUs (thread=single): with a thread per vCPU (QEMU's default), 2 of 40
// boots with 2 vCPUs had died of an "Oops: int3" in sched_clock_cpu, a
// breakpoint of the kernel's live code patching executed by one vCPU after
// the other had removed it. One thread cost 1 % of boot time
// (BenchmarkBootLoop; docs/architecture.md, Decisions). A value with options
// is the caller's choice and stays as is.
func accelOpt(accel string) string {
	if accel == "tcg" {
		return "tcg,thread=single"
	}
	return accel
}

// KernelCmdline is the guest kernel's command line. The workload's argv and
// environment never go here (the line is capped near 2 KiB): they travel in
// /.krun_config.json. reboot=t (triple fault) ends the VM in ~0.1 s under
// TCG; reboot=k (keyboard controller) took 1.5 s there.
// pageReportingOrder is appended.
func KernelCmdline(init string) string {
	return "console=hvc0 root=" + contract.RootTag + " rootfstype=virtiofs rw init=" + init +
		" reboot=t panic=-1 quiet " + pageReportingOrder
}

// tcgDelayLoop presets the delay loop's speed under TCG, where the kernel
// otherwise measures it at every boot ("Calibrating delay loop", 32-64 ms of
// the guest's clock here): TCG marks the TSC unstable, so udelay() counts
// loops. The value is the middle of what the calibration found on our
// machines (lpj 457728-729088, a spread the calibration itself has from one
// boot to the next); QEMU's emulated devices need no exact delays. KVM
// guests take the delay from the TSC without a loop and are left alone.
const tcgDelayLoop = "lpj=550000"

// pageReportingOrder makes the guest report free blocks of 32 KiB (order 3)
// to the balloon, not only the 2 MiB ones (the kernel's default, order 9):
// after a 1 GiB fill and free, QEMU's RSS came back to 1.137× its RSS
// before (order 0: 1.118-1.131; 5: 1.154; 9: 1.154-1.165), with no slower
// boot; 32 KiB rather than 4 KiB keeps the reports, and the faults when the
// guest reuses the memory, fewer (docs/architecture.md, Decisions).
const pageReportingOrder = "page_reporting.page_reporting_order=3"

// mmioTransports is how many virtio-mmio devices QEMU's microvm has without
// ACPI (the libkrunfw kernel has none, so its second IO-APIC and 24
// transports are out of reach): every share, disk, the serial device, the
// network and the balloon take one.
const mmioTransports = 8

// essentialDevices counts the devices a run cannot do without: the shares
// (root first), the disks, the virtio-serial device and the network.
func (c Config) essentialDevices() int {
	n := len(c.shares()) + len(c.Plan.Disks) + 1
	if c.netFD() >= 0 {
		n++
	}
	return n
}

// balloon: the free-page-reporting balloon is added when a transport is
// left for it; it is the one device a run does without (memory then comes
// back only when the VM ends).
func (c Config) balloon() bool { return c.essentialDevices() < mmioTransports }

// devices is how many virtio-mmio devices Args attaches.
func (c Config) devices() int {
	if c.balloon() {
		return c.essentialDevices() + 1
	}
	return c.essentialDevices()
}

// checkDevices refuses a plan with more devices than microvm has transports,
// naming what to drop.
func (c Config) checkDevices() error {
	if n := c.essentialDevices(); n > mmioTransports {
		return fmt.Errorf("qemu: %d virtio devices (%d shares, %d disks, the console, the network) but QEMU's microvm has %d: pass fewer -v volumes (or [agentbox] mounts), or run with --network none", n, len(c.shares()), len(c.Plan.Disks), mmioTransports)
	}
	return nil
}

// mmioDevices returns the virtio_mmio.device entries QEMU's microvm puts on
// the kernel command line for n devices (auto-kernel-cmdline): its
// transports are 512 bytes apart from 0xfeb00000 with IRQ 5+j, and the
// devices, in the order of the command line (shares, disks, then the
// virtio-serial device), take the transports from the 8th down. Read from
// a guest's /proc/cmdline with 2 shares and 2 disks:
// 512@0xfeb00e00:12 512@0xfeb00c00:11 512@0xfeb00a00:10 512@0xfeb00800:9
// 512@0xfeb00600:8.
func mmioDevices(n int) []string {
	const base, size, transports, firstIRQ = 0xfeb00000, 512, 8, 5
	devs := make([]string, 0, n)
	for i := range n {
		j := transports - 1 - i
		devs = append(devs, fmt.Sprintf("virtio_mmio.device=%d@%#x:%d", size, base+size*j, firstIRQ+j))
	}
	return devs
}

// diskArgs attach disk d, open in QEMU as fd set set. werror/rerror=report: a
// failed write (the host filesystem under the state directory is full)
// reaches the guest as an I/O error. QEMU's default for writes, enospc,
// pauses the VM instead, and a paused VM never ends: the run would hang.
func diskArgs(i, set int, d launch.Disk) []string {
	id := fmt.Sprintf("blk%d", i)
	drive := "file=" + fdSetPath(set) + ",if=none,id=" + id + ",format=raw,werror=report,rerror=report"
	if d.ReadOnly {
		drive += ",readonly=on"
	}
	return []string{"-drive", drive, "-device", "virtio-blk-device,drive=" + id + ",serial=" + d.ID}
}

// fdSetPath names fd set n (-add-fd): QEMU dups a member of the set
// whose access mode matches, and never opens a path.
func fdSetPath(n int) string { return "/dev/fdset/" + strconv.Itoa(n) }

// fdPath names QEMU's inherited fd as a file it can open: QEMU reopens it
// with the flags it needs, and the name holds no byte of the host's path.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
