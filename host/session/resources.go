package session

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/loftd/loftd/internal/cglimits"
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

// The Downward API's way to tell a pod its limits (as envbox's CODER_CPUS
// and CODER_MEMORY): env from resourceFieldRef limits.cpu (whole CPUs,
// rounded up) and limits.memory (bytes).
const (
	EnvCPUs   = "LOFTD_CPUS"
	EnvMemory = "LOFTD_MEMORY"
)

// Resources is what this process may give a VM, each value the tightest
// of the host's size, its cgroups' limits and EnvCPUs/EnvMemory, with where
// it came from (for doctor and the errors that name a ceiling).
type Resources struct {
	MemBytes          uint64
	CPUs              int
	MemFrom, CPUsFrom string
}

// ReadResources reads the host, the cgroups and getenv. A malformed
// EnvCPUs or EnvMemory is an error: a pod that asked for a size must not
// silently get the node's.
func ReadResources(getenv func(string) string) (Resources, error) {
	var r Resources
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		r.MemBytes, r.MemFrom = uint64(si.Totalram)*uint64(si.Unit), "host RAM"
	}
	// NumCPU honours the CPU affinity (a cpuset), so a pinned pod already
	// sees its own CPUs here.
	r.CPUs, r.CPUsFrom = runtime.NumCPU(), "host CPUs"
	if l, err := cglimits.Self(); err == nil {
		r.tighten(l.MemBytes, l.MemFile, l.CPUs, l.CPUFile)
	}
	if s := getenv(EnvMemory); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return r, fmt.Errorf("%s=%q: want the memory limit in bytes (the Downward API's limits.memory)", EnvMemory, s)
		}
		r.tighten(n, EnvMemory, 0, "")
	}
	if s := getenv(EnvCPUs); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return r, fmt.Errorf("%s=%q: want a whole number of CPUs (the Downward API's limits.cpu with divisor 1)", EnvCPUs, s)
		}
		r.tighten(0, "", n, EnvCPUs)
	}
	return r, nil
}

func (r *Resources) tighten(mem uint64, memFrom string, cpus int, cpusFrom string) {
	if mem > 0 && (r.MemBytes == 0 || mem < r.MemBytes) {
		r.MemBytes, r.MemFrom = mem, memFrom
	}
	if cpus > 0 && (r.CPUs == 0 || cpus < r.CPUs) {
		r.CPUs, r.CPUsFrom = cpus, cpusFrom
	}
}

// HostResources is the RAM in bytes and the CPUs a VM may have here (0
// when unknown): the host's, or less where a cgroup or the pod's Downward
// API says so. A malformed variable counts as unset here; the session's
// option check reports it.
func HostResources() (memBytes uint64, cpus int) {
	r, _ := ReadResources(os.Getenv)
	return r.MemBytes, r.CPUs
}
