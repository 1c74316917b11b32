package qemu

import "strings"

// GuestCmdline is the kernel command line Args gives a guest whose init is
// init under accel: KernelCmdline, plus under TCG the preset delay loop and
// zeroed freed pages. Benchmarks boot raw QEMU with it, so a baseline runs
// the same line.
func GuestCmdline(init, accel string) string {
	line := KernelCmdline(init)
	if strings.HasPrefix(accel, "tcg") {
		line += " " + tcgDelayLoop + " " + tcgFreshCode
	}
	return line
}

// tcgFreshCode has the guest kernel zero every page it allocates. Under
// TCG, QEMU runs its translations of guest code and drops them only when a
// guest CPU writes to their page; virtiofsd writes a file's pages straight
// into guest memory, which QEMU never sees. The FUSE page cache is dropped
// at each open of a file (virtiofsd's cache=auto), so a freed page that had
// held one program's code came back with another's, read over virtiofs, and
// the new program ran the old code's translation: 1-11 of every 240 runs of
// two static Go programs from the workspace died of SIGSEGV or SIGTRAP with
// two vCPUs, none with copies in tmpfs (written by the guest CPU) and none
// with this option (0 of 480) - TestExecFromVirtiofs. It was CI's
// intermittent guest SIGSEGV (curl in TestPodman, a Go program in
// TestMappedWritesReachHost). init_on_free=1 stopped it as well (0 of 720)
// but zeroes all of the guest's memory as the kernel frees it at boot: with
// loftd's default (80 % of the host's, 19 GiB here) the VM then took 40-55 s
// longer and QEMU touched every page. Under KVM the hardware keeps code
// coherent and nothing is added.
const tcgFreshCode = "init_on_alloc=1"
