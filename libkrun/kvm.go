package libkrun

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/loftd/loftd/internal/kvmcheck"
)

// KVMDevice is the device libkrun runs its guests on.
const KVMDevice = "/dev/kvm"

// KVM ioctls (linux/kvm.h): KVMIO 0xAE, nr 0x00 and 0x01.
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmAPIVersion    = 12
)

// CheckKVM tells whether libkrun can create a VM here, before
// krun_start_enter finds out: libkrun v1.19.0 does not return an error
// without KVM, it panics inside the library ("Error creating the Kvm
// object", krun-vmm's KvmContext::new), which takes the whole process down
// with no word the user can act on. It opens KVMDevice read-write, checks
// the API version libkrun insists on, creates (and drops) one VM, and
// refuses a PVM /dev/kvm, which cannot run libkrunfw's kernel.
func CheckKVM() error {
	fd, err := unix.Open(KVMDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return kvmError(&os.PathError{Op: "open", Path: KVMDevice, Err: err})
	}
	defer unix.Close(fd)
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return kvmError(&os.PathError{Op: "ioctl KVM_GET_API_VERSION", Path: KVMDevice, Err: err})
	}
	if v != kvmAPIVersion {
		return kvmError(fmt.Errorf("%s: KVM API version %d, libkrun needs %d", KVMDevice, v, kvmAPIVersion))
	}
	vm, err := unix.IoctlRetInt(fd, kvmCreateVM)
	if err != nil {
		return kvmError(&os.PathError{Op: "ioctl KVM_CREATE_VM", Path: KVMDevice, Err: err})
	}
	unix.Close(vm)
	if err := kvmcheck.PVM(); err != nil {
		return kvmError(err)
	}
	return nil
}

// ErrNoKVM is CheckKVM's error: libkrun cannot run a guest here.
var ErrNoKVM = errors.New("libkrun needs KVM, which is not usable here")

func kvmError(err error) error {
	return fmt.Errorf("%w: %w (enable hardware virtualization and load the kvm module, or join the "+
		"group that owns %s; --vmm qemu runs without KVM)", ErrNoKVM, err, KVMDevice)
}
