package confine

import (
	"fmt"
	"os"
	"strings"
)

// Access is what a path rule allows under it.
type Access int

const (
	// Read allows reading files and listing directories.
	Read Access = iota
	// ReadExec also allows executing (and mapping as code) files.
	ReadExec
	// ReadWrite allows reading, writing, creating and removing, and
	// ioctl on devices (KVM, tun).
	ReadWrite
)

func (a Access) String() string {
	switch a {
	case Read:
		return "ro"
	case ReadExec:
		return "rx"
	case ReadWrite:
		return "rw"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// PathRule allows Access on Path and, for a directory, everything under
// it. Optional rules whose path is missing are skipped (a /dev/kvm that
// is not there); a missing required path is an error at Apply.
type PathRule struct {
	Path     string
	Access   Access
	Optional bool
}

func (r PathRule) String() string {
	s := r.Access.String() + " " + r.Path
	if r.Optional {
		s += " (optional)"
	}
	return s
}

// Policy is what one confined process keeps. Everything not named is
// denied: files outside Paths (Landlock), TCP unless AllowTCP, system calls
// outside Syscalls (seccomp).
type Policy struct {
	// Name says whose policy it is in logs and errors ("helper", "qemu").
	Name  string
	Paths []PathRule
	// Syscalls is the seccomp allow-list, by name (AllowList builds it
	// from groups). Names this architecture lacks are skipped.
	Syscalls []string
	// NoNewNamespaces keeps clone allowed for threads and plain
	// processes but refuses any CLONE_NEW* flag (clone3 gets ENOSYS: a
	// filter cannot read its flags, and libc falls back to clone).
	NoNewNamespaces bool
	// AllowTCP leaves TCP bind and connect to the kernel's usual checks
	// (libkrun's TSI network proxies the guest's sockets from the VMM
	// process); otherwise Landlock refuses both (ABI 4+).
	AllowTCP bool
	// ScopeSignals refuses signals to processes outside the Landlock
	// domain (ABI 6+). Off for a process that must still stop children
	// it started before confining itself (the QEMU helper).
	ScopeSignals bool
	// LogAfterExec keeps Landlock logging denials (ABI 7+, to the audit
	// log) once the process execs: for a wrapper that applies the policy
	// and then execs the real program (QEMU), whose denials are the ones
	// to see. Off, the kernel logs only denials before the exec.
	LogAfterExec bool
}

// String lists the policy for logs and `doctor`.
func (p Policy) String() string {
	var paths []string
	for _, r := range p.Paths {
		paths = append(paths, r.String())
	}
	return fmt.Sprintf("%s: paths [%s], %d system calls, tcp %v", p.Name, strings.Join(paths, ", "), len(p.Syscalls), p.AllowTCP)
}

// presentPaths drops the optional rules whose path is missing and fails
// on a missing required one, naming it.
func (p Policy) presentPaths() ([]PathRule, error) {
	var out []PathRule
	for _, r := range p.Paths {
		if _, err := os.Stat(r.Path); err != nil {
			if r.Optional && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("%s sandbox: path %s: %w", p.Name, r.Path, err)
		}
		out = append(out, r)
	}
	return out, nil
}
