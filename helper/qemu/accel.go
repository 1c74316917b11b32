package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/loftd/loftd/internal/kvmcheck"
)

// AccelEnv forces the accelerator ("kvm" or "tcg").
const AccelEnv = "LOFTD_QEMU_ACCEL"

// KVM ioctls (linux/kvm.h); x/sys does not carry them.
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmGetVCPUMmapSize     = 0xAE04
	kvmCreateVCPU          = 0xAE41
	kvmRun                 = 0xAE80
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84
	kvmSetRegs             = 0x4090AE82
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmExitHlt             = 5
	kvmProbeTimeout        = 2 * time.Second
)

// qemuProbeTimeout bounds the QEMU half of the KVM probe (a var for tests).
var qemuProbeTimeout = 5 * time.Second

// PickAccel returns the accelerator to use: want when set, else
// $LOFTD_QEMU_ACCEL, else "kvm" when ProbeKVM(qemuPath) passes, else "tcg".
// The reason says why, for doctor and debug logs.
func PickAccel(want, qemuPath string) (accel, reason string) {
	return pickAccel(want, qemuPath, ProbeKVM)
}

// pickAccel is PickAccel with the KVM probe passed in (tests inject one).
func pickAccel(want, qemuPath string, probe func(qemuPath string) error) (accel, reason string) {
	switch {
	case want != "":
		return want, "asked for"
	case os.Getenv(AccelEnv) != "":
		return os.Getenv(AccelEnv), AccelEnv + " is set"
	}
	if err := probe(qemuPath); err != nil {
		return "tcg", err.Error()
	}
	return "kvm", "/dev/kvm runs a guest"
}

// ProbeKVM tells whether QEMU can run a guest on /dev/kvm. /dev/kvm can
// exist and still fail: on nested hosts QEMU aborts at vCPU reset when KVM
// refuses an MSR (seen: "failed to set MSR 0x10a"). So the probe first runs
// a one-instruction guest (hlt) through the KVM ioctls, then starts qemuPath
// with -accel kvm stopped (-S) and quits it from the monitor. Both are
// bounded: a probe never hangs. A PVM /dev/kvm passes both and still
// cannot boot the guest kernel (internal/kvmcheck), so it is refused first.
func ProbeKVM(qemuPath string) error {
	if err := kvmcheck.PVM(); err != nil {
		return fmt.Errorf("kvm probe: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- probeKVM() }()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
	case <-time.After(kvmProbeTimeout):
		return fmt.Errorf("kvm probe: a one-instruction guest did not finish in %v", kvmProbeTimeout)
	}
	return probeQEMUKVM(qemuPath)
}

func probeQEMUKVM(qemuPath string) error {
	ctx, cancel := context.WithTimeout(context.Background(), qemuProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuPath, "-accel", "kvm", "-M", "microvm,acpi=off,isa-serial=off",
		"-cpu", "host", "-m", "64", "-nodefaults", "-no-user-config", "-display", "none", "-S", "-monitor", "stdio")
	cmd.Stdin = strings.NewReader("quit\n")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kvm probe: %s -accel kvm: %v: %s", qemuPath, err, lastLine(out))
	}
	return nil
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func probeKVM() error {
	kvm, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("kvm probe: %w", &os.PathError{Op: "open", Path: "/dev/kvm", Err: err})
	}
	defer unix.Close(kvm)
	if v, err := ioctl(kvm, kvmGetAPIVersion, 0); err != nil || v != 12 {
		return fmt.Errorf("kvm probe: KVM_GET_API_VERSION = %d, %v", v, err)
	}
	vm, err := ioctl(kvm, kvmCreateVM, 0)
	if err != nil {
		return fmt.Errorf("kvm probe: KVM_CREATE_VM: %w", err)
	}
	defer unix.Close(vm)
	mem, err := unix.Mmap(-1, 0, 0x1000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("kvm probe: mmap: %w", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 0xf4 // hlt
	// struct kvm_userspace_memory_region: u32 slot, u32 flags, u64
	// guest_phys_addr, u64 memory_size, u64 userspace_addr (slot 0, no flags).
	region := [4]uint64{0, 0x1000, 0x1000, uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if _, err := ioctlPtr(vm, kvmSetUserMemoryRegion, unsafe.Pointer(&region[0])); err != nil {
		return fmt.Errorf("kvm probe: KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	return runProbeVCPU(kvm, vm)
}

func runProbeVCPU(kvm, vm int) error {
	vcpu, err := ioctl(vm, kvmCreateVCPU, 0)
	if err != nil {
		return fmt.Errorf("kvm probe: KVM_CREATE_VCPU: %w", err)
	}
	defer unix.Close(vcpu)
	size, err := ioctl(kvm, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fmt.Errorf("kvm probe: KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	run, err := unix.Mmap(vcpu, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("kvm probe: mmap kvm_run: %w", err)
	}
	defer unix.Munmap(run)
	// Real mode, CS base 0, IP at the hlt.
	var sregs [312]byte
	if _, err := ioctlPtr(vcpu, kvmGetSregs, unsafe.Pointer(&sregs[0])); err != nil {
		return fmt.Errorf("kvm probe: KVM_GET_SREGS: %w", err)
	}
	// struct kvm_segment cs is first: base u64, limit u32, selector u16.
	*(*uint64)(unsafe.Pointer(&sregs[0])) = 0
	*(*uint16)(unsafe.Pointer(&sregs[12])) = 0
	if _, err := ioctlPtr(vcpu, kvmSetSregs, unsafe.Pointer(&sregs[0])); err != nil {
		return fmt.Errorf("kvm probe: KVM_SET_SREGS: %w", err)
	}
	var regs [18]uint64 // rax..r15, rip, rflags
	regs[16], regs[17] = 0x1000, 0x2
	if _, err := ioctlPtr(vcpu, kvmSetRegs, unsafe.Pointer(&regs[0])); err != nil {
		return fmt.Errorf("kvm probe: KVM_SET_REGS: %w", err)
	}
	if _, err := ioctl(vcpu, kvmRun, 0); err != nil {
		return fmt.Errorf("kvm probe: KVM_RUN: %w", err)
	}
	if reason := *(*uint32)(unsafe.Pointer(&run[8])); reason != kvmExitHlt {
		return fmt.Errorf("kvm probe: guest exited with reason %d, want %d (HLT)", reason, kvmExitHlt)
	}
	return nil
}

func ioctl(fd int, req uint, arg uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg)
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}
