package confine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcStatus is what /proc/PID/status says about a process's confinement.
// Landlock is not there (the kernel does not publish a domain): the
// process that confines records it (Applied).
type ProcStatus struct {
	UID        int  // effective uid
	NoNewPrivs bool // NoNewPrivs: 1
	// Seccomp is 0 (none), 1 (strict) or 2 (filter); Filters counts
	// the filters stacked on the process.
	Seccomp, Filters int
}

func (s ProcStatus) String() string {
	return fmt.Sprintf("uid=%d nnp=%v seccomp=%d", s.UID, s.NoNewPrivs, s.Seccomp)
}

// ReadStatus reads pid's status under procRoot ("/proc").
func ReadStatus(procRoot string, pid int) (ProcStatus, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return ProcStatus{}, fmt.Errorf("confinement of %d: %w", pid, err)
	}
	return ParseStatus(string(data))
}

// ParseStatus reads the fields of ProcStatus from a status file's text.
func ParseStatus(text string) (ProcStatus, error) {
	var s ProcStatus
	seen := 0
	for line := range strings.SplitSeq(text, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		var err error
		switch key {
		case "Uid":
			if len(f) < 2 {
				return s, fmt.Errorf("status: bad Uid line %q", line)
			}
			s.UID, err = strconv.Atoi(f[1])
			seen++
		case "NoNewPrivs":
			s.NoNewPrivs = f[0] == "1"
			seen++
		case "Seccomp":
			s.Seccomp, err = strconv.Atoi(f[0])
			seen++
		case "Seccomp_filters":
			s.Filters, err = strconv.Atoi(f[0])
		}
		if err != nil {
			return s, fmt.Errorf("status: bad %s line %q: %w", key, line, err)
		}
	}
	if seen < 3 {
		return s, fmt.Errorf("status: no Uid, NoNewPrivs and Seccomp lines")
	}
	return s, nil
}

// HostRoot says whether this process is the host's root: euid 0 in the
// initial user namespace (its uid map is the identity over every id). A
// rootless loftd's helper is root only in its own namespace, where it
// already holds no host privilege.
func HostRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(data))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}
