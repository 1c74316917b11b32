package launch

import (
	"fmt"
	"strings"

	"github.com/loftd/loftd/contract"
)

// VMM is a VM backend. The names are the --vmm values and the plan's wire
// form; Parse is the one place that reads them.
type VMM string

// The backends. VMMAuto is a request (--vmm auto, the default), never a
// plan's backend: the parent resolves it.
const (
	VMMAuto VMM = "auto"
	VMMKrun VMM = "krun"
	VMMQEMU VMM = "qemu"
)

var vmms = []VMM{VMMAuto, VMMKrun, VMMQEMU}

// ParseVMM reads a --vmm or [vm] vmm value; "" is auto.
func ParseVMM(s string) (VMM, error) {
	if s == "" {
		return VMMAuto, nil
	}
	return parseName(s, vmms)
}

func (v VMM) String() string { return string(v) }

// NetworkMode is the guest's network. The names are the --network values,
// the plan's wire form and the guest contract's (LOFTD_NETWORK).
type NetworkMode string

// The network modes.
const (
	// NetworkEgress (the default): loftd's own user-mode network
	// (egress/netstack, gVisor) under the egress policy, in a child
	// process of the helper.
	NetworkEgress NetworkMode = contract.NetworkEgress
	// NetworkPasst: passt, unfiltered (the guest reaches the host's
	// loopback, the LAN and link-local addresses).
	NetworkPasst NetworkMode = contract.NetworkPasst
	NetworkTSI   NetworkMode = contract.NetworkTSI
	NetworkNone  NetworkMode = contract.NetworkNone
)

var networkModes = []NetworkMode{NetworkEgress, NetworkPasst, NetworkTSI, NetworkNone}

// ParseNetworkMode reads a --network or [network] mode value; "" is
// egress, the policy network.
func ParseNetworkMode(s string) (NetworkMode, error) {
	if s == "" {
		return NetworkEgress, nil
	}
	return parseName(s, networkModes)
}

func (m NetworkMode) String() string { return string(m) }

// HasNIC reports whether the guest has a virtio-net device on a
// user-mode network (passt or egress), on a stream socket the helper
// hands the VMM.
func (m NetworkMode) HasNIC() bool { return m == NetworkPasst || m == NetworkEgress }

// VirtiofsdFlavor is which virtiofsd a plan's Virtiofsd is: the Rust one
// and QEMU's C one take different options. The parent finds out once, when
// it finds the binary (vmm/qemu.FindVirtiofsd); the helper does not ask
// virtiofsd again.
type VirtiofsdFlavor string

// The virtiofsd flavors.
const (
	// VirtiofsdRust: --shared-dir, --readonly, --modcaps (the maintained one).
	VirtiofsdRust VirtiofsdFlavor = "rust"
	// VirtiofsdC: QEMU's C virtiofsd, -o source= (removed from QEMU in 8.0).
	VirtiofsdC VirtiofsdFlavor = "c"
)

func (f VirtiofsdFlavor) String() string { return string(f) }

// parseName is s as one of names, or an error listing them (the caller
// names the flag or key).
func parseName[T ~string](s string, names []T) (T, error) {
	for _, n := range names {
		if string(n) == s {
			return n, nil
		}
	}
	want := make([]string, len(names))
	for i, n := range names {
		want[i] = string(n)
	}
	return "", fmt.Errorf("%q: want one of %s", s, strings.Join(want, ", "))
}

// MiB is an amount of memory in mebibytes: the one unit from --mem (GiB,
// converted once) to the backends.
type MiB uint64

// GiB is n gibibytes.
func GiB(n uint64) MiB { return MiB(n) << 10 }

// MaxVCPUs is the most vCPUs a VM can have: libkrun's krun_set_vm_config
// takes a uint8, and QEMU gets the same so both backends accept the same
// --cpus. A libkrun may lower it to what KVM allows (helper/krun).
const MaxVCPUs = 255
