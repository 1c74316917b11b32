// Package confine owns how loftd's VMM processes give up what a VM does not
// need (docs/architecture.md, "Confinement"): Landlock (file and network
// access, IPC scopes), a seccomp allow-list, and no_new_privs. A Policy is
// data: the paths a process may reach and the system calls it may make, so
// that a backend that needs more adds rules rather than code. Apply
// installs a Policy on the calling process (every thread); Status reads
// back what a process runs under from /proc.
//
// It imports nothing of loftd: the helper (helper, helper/qemu), the
// wrappers it execs through, doctor and ps use it.
package confine

import "fmt"

// Mode is how a VMM process is confined: the --vmm-sandbox flag and the
// [vm] sandbox config key.
type Mode string

const (
	// Enforce applies the policy and refuses to boot when it cannot be
	// applied (fail closed). The default.
	Enforce Mode = "enforce"
	// Audit denies nothing: seccomp logs each call outside the allow-list
	// (SECCOMP_RET_LOG, to the kernel log as audit type=1326, which
	// `loftd internal seccomp-audit` turns back into allow-list entries);
	// Landlock, which has no log-only mode, is not applied: the rules it
	// would apply are logged at debug level.
	Audit Mode = "audit"
	// Off confines nothing (the escape hatch).
	Off Mode = "off"
)

// Modes lists the valid modes, for messages and completion.
var Modes = []Mode{Enforce, Audit, Off}

// ParseMode reads a --vmm-sandbox value; "" is the default, Enforce.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "":
		return Enforce, nil
	case Enforce, Audit, Off:
		return Mode(s), nil
	}
	return "", fmt.Errorf("vmm sandbox %q: want enforce, audit or off", s)
}

func (m Mode) String() string { return string(m) }
