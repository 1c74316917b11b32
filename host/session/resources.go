package session

import (
	"runtime"

	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// DefaultMem is 80 % of host RAM rounded down to whole GiB, at least 1
// GiB (as the Rust original): the guest only touches what it uses.
func DefaultMem(totalBytes uint64) launch.MiB {
	return launch.GiB(max(totalBytes*8/10>>30, 1))
}

// DefaultCPUs is every CPU on a host with ≤ 6, else all but 2, leaving the
// host room for virtiofsd and the VMM's own threads; never more than
// launch.MaxVCPUs.
func DefaultCPUs(hostCPUs int) int {
	if hostCPUs <= 6 {
		return max(hostCPUs, 1)
	}
	return min(hostCPUs-2, launch.MaxVCPUs)
}

// HostResources is the host's RAM in bytes and its CPUs (0 when unknown).
func HostResources() (memBytes uint64, cpus int) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		memBytes = uint64(si.Totalram) * uint64(si.Unit)
	}
	return memBytes, runtime.NumCPU()
}
