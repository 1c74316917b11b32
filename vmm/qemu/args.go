package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/loftd/loftd/guestinit/contract"
)

// portNames are the virtio-serial ports, in the order their sockets are
// passed to QEMU as fds 3, 4, 5 and 6.
var portNames = []string{contract.PortStdin, contract.PortStdout, contract.PortStderr, contract.PortStatus}

// firstPortFD is the fd of the first port socket in QEMU (ExtraFiles start at 3).
const firstPortFD = 3

// Args returns QEMU's arguments for cfg.Plan, booted with cfg's kernel and
// accelerator (resolved: Accel set), with the vhost-user sockets of the
// shares (root first) at fsSockets and the kernel console logged to
// consoleLog.
func Args(cfg Config, fsSockets []string, consoleLog string) []string {
	p := cfg.Plan
	cpu := "max"
	if cfg.Accel == "kvm" {
		cpu = "host"
	}
	mem := strconv.Itoa(p.RAMMiB)
	a := []string{
		"-accel", accelOpt(cfg.Accel),
		// Without pit/pic/rtc TCG hangs; the libkrunfw kernel has no ACPI.
		"-M", "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=off",
		"-cpu", cpu, "-smp", strconv.Itoa(p.VCPUs), "-m", mem,
		// vhost-user needs guest memory shared with virtiofsd.
		"-object", "memory-backend-memfd,id=mem,size=" + mem + "M,share=on",
		"-machine", "memory-backend=mem",
		// virtiofsd refuses legacy virtio-mmio.
		"-global", "virtio-mmio.force-legacy=false",
		"-nodefaults", "-no-user-config", "-nographic",
		// The guest ends by rebooting: make that QEMU's exit.
		"-no-reboot",
		"-kernel", cfg.Kernel,
		"-append", KernelCmdline(p.ExecPath),
	}
	for i, s := range cfg.shares() {
		id := fmt.Sprintf("fs%d", i)
		a = append(a, "-chardev", "socket,id="+id+",path="+escapeOpt(fsSockets[i]),
			"-device", "vhost-user-fs-device,chardev="+id+",tag="+s.Tag)
	}
	for i, d := range p.Disks {
		id := fmt.Sprintf("blk%d", i)
		drive := "file=" + escapeOpt(d.Path) + ",if=none,id=" + id + ",format=raw"
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		a = append(a, "-drive", drive, "-device", "virtio-blk-device,drive="+id+",serial="+d.ID)
	}
	a = append(a, "-device", "virtio-serial-device",
		"-chardev", "file,id=con,path="+escapeOpt(consoleLog), "-device", "virtconsole,chardev=con")
	for i, name := range portNames {
		id := fmt.Sprintf("port%d", i)
		a = append(a, "-chardev", fmt.Sprintf("socket,id=%s,fd=%d", id, firstPortFD+i),
			"-device", "virtserialport,chardev="+id+",name="+name)
	}
	return append(a, netArgs(cfg.netFD(), p.Network.MAC)...)
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
func KernelCmdline(init string) string {
	return "console=hvc0 root=" + contract.RootTag + " rootfstype=virtiofs rw init=" + init +
		" reboot=t panic=-1 quiet"
}

// escapeOpt doubles commas, QEMU's escape inside an option value.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }
