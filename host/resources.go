package host

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// DefaultMemGiB is 80 % of host RAM rounded down to whole GiB, at least 1
// (as the Rust original): the guest only touches what it uses.
func DefaultMemGiB(totalBytes uint64) int {
	gib := int(totalBytes * 8 / 10 >> 30)
	return max(gib, 1)
}

// DefaultCPUs is every CPU on a host with ≤ 6, else all but 2, leaving the
// host room for virtiofsd and the VMM's own threads; never more than
// maxVCPUs, libkrun's limit.
func DefaultCPUs(hostCPUs int) int {
	if hostCPUs <= 6 {
		return max(hostCPUs, 1)
	}
	return min(hostCPUs-2, maxVCPUs)
}

func hostResources() (memBytes uint64, cpus int) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		memBytes = uint64(si.Totalram) * uint64(si.Unit)
	}
	return memBytes, runtime.NumCPU()
}
