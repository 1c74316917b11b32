// Package kvmcheck holds what both VMM backends must know about this
// host's KVM beyond "does /dev/kvm open": a /dev/kvm can create VMs and
// still be unable to run the guest kernel loftd boots. It imports nothing
// of loftd.
package kvmcheck

import (
	"fmt"
	"os"
	"path/filepath"
)

// SysModule is where the kernel lists its loaded modules (a var for tests).
var SysModule = "/sys/module"

// PVM reports an error when /dev/kvm is served by kvm_pvm, the
// "Pagetable-based Virtual Machine" of nested cloud sandboxes (Firecracker
// hosts with nested_pvm=1). It creates VMs and runs a one-instruction
// guest, so the usual probes pass, but it runs only guest kernels built
// for PVM (CONFIG_KVM_PVM_GUEST); libkrunfw's kernel is not, and its boot
// spins on "kvm-pvm: INTERNAL_ERROR in batch emul" (dmesg) with the VMM
// busy in the kernel forever. Only one vendor module serves /dev/kvm at a
// time, so a loaded kvm_pvm means /dev/kvm is PVM.
func PVM() error {
	if _, err := os.Stat(filepath.Join(SysModule, "kvm_pvm")); err == nil {
		return fmt.Errorf("/dev/kvm is kvm_pvm (a nested PVM host), which runs only PVM-enabled guest kernels; libkrunfw's kernel is not one")
	}
	return nil
}
