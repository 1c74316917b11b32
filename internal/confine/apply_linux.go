package confine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Applied is what Apply installed, for logs and the task's record.
type Applied struct {
	Mode Mode `json:"mode"`
	// LandlockABI is the kernel's Landlock ABI (0: none); Landlock says
	// whether rules were enforced (not in audit mode, not without ABI).
	LandlockABI int  `json:"landlock_abi"`
	Landlock    bool `json:"landlock"`
	Seccomp     bool `json:"seccomp"`
	NoNewPrivs  bool `json:"no_new_privs"`
}

// Apply confines the calling process, every thread of it, under p in mode
// m: no_new_privs, then Landlock (enforce only), then the seccomp
// allow-list (enforce: EPERM; audit: logged and allowed). Nothing can be
// undone afterwards, here or in what this process execs. In Enforce mode
// any part that cannot be applied is an error and the caller must not
// boot; a kernel without Landlock is the one exception (best effort,
// reported as LandlockABI 0), so that loftd still runs on old kernels
// with the seccomp filter.
func Apply(m Mode, p Policy, log *slog.Logger) (Applied, error) {
	a := Applied{Mode: m, LandlockABI: LandlockABI()}
	if m == Off {
		return a, nil
	}
	if err := seccomp.SetNoNewPrivs(); err != nil {
		return a, fmt.Errorf("%s sandbox: no_new_privs: %w", p.Name, err)
	}
	a.NoNewPrivs = true
	if m == Enforce {
		if err := RestrictPaths(p); err != nil {
			return a, err
		}
		a.Landlock = a.LandlockABI > 0
	} else if log != nil {
		log.Debug("vmm sandbox audit: landlock not enforced", "policy", p.String())
	}
	if err := LoadSeccomp(m, p); err != nil {
		return a, err
	}
	a.Seccomp = true
	return a, nil
}

// LandlockABI is the kernel's Landlock ABI version, 0 without Landlock.
func LandlockABI() int {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}

// SeccompSupported says whether this kernel filters system calls.
func SeccompSupported() bool { return seccomp.Supported() }

// RestrictPaths enforces p's Landlock rules on every thread, as far as the
// kernel's ABI goes (best effort: an older ABI restricts fewer rights).
func RestrictPaths(p Policy) error {
	rules, err := landlockRules(p)
	if err != nil {
		return err
	}
	cfg := landlock.V7
	if p.AllowTCP {
		cfg.HandledAccessNet = 0
	}
	if !p.ScopeSignals {
		cfg.Scoped &^= llsys.ScopeSignal
	}
	if p.LogAfterExec {
		cfg = cfg.EnableLoggingForSubprocesses() // dropped below ABI 7 (best effort)
	}
	if err := cfg.BestEffort().Restrict(rules...); err != nil {
		return fmt.Errorf("%s sandbox: landlock: %w", p.Name, err)
	}
	return nil
}

// File rights that make no sense on a directory and the reverse: Landlock
// refuses directory rights on a file rule.
const (
	readFile  = llsys.AccessFSReadFile
	execFile  = llsys.AccessFSExecute
	readDir   = llsys.AccessFSReadDir
	writeFile = llsys.AccessFSWriteFile | llsys.AccessFSTruncate | llsys.AccessFSIoctlDev
)

func landlockRules(p Policy) ([]landlock.Rule, error) {
	present, err := p.presentPaths()
	if err != nil {
		return nil, err
	}
	var rules []landlock.Rule
	for _, r := range present {
		fi, err := os.Stat(r.Path)
		if err != nil {
			return nil, fmt.Errorf("%s sandbox: path %s: %w", p.Name, r.Path, err)
		}
		dir := fi.IsDir()
		switch {
		case r.Access == ReadWrite && dir:
			rules = append(rules, landlock.RWDirs(r.Path).WithIoctlDev())
		case r.Access == ReadWrite:
			rules = append(rules, landlock.RWFiles(r.Path).WithIoctlDev())
		case r.Access == ReadExec && dir:
			rules = append(rules, landlock.PathAccess(readFile|readDir|execFile, r.Path))
		case r.Access == ReadExec:
			rules = append(rules, landlock.PathAccess(readFile|execFile, r.Path))
		case dir:
			rules = append(rules, landlock.RODirs(r.Path))
		default:
			rules = append(rules, landlock.ROFiles(r.Path))
		}
	}
	return rules, nil
}

// namespaceFlags are clone's flags that make a new namespace.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// Filter is p's seccomp allow-list for mode m as a go-seccomp-bpf filter
// (exported so a test can check the program assembles).
func Filter(m Mode, p Policy) (seccomp.Filter, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Filter{}, fmt.Errorf("%s sandbox: seccomp: %w", p.Name, err)
	}
	var allow []string
	var conditional []seccomp.NameWithConditions
	for _, name := range p.Syscalls {
		if _, ok := native.SyscallNames[name]; !ok {
			continue // an x86_64-only name on arm64
		}
		if name == "clone" && p.NoNewNamespaces {
			conditional = append(conditional, seccomp.NameWithConditions{Name: name, Conditions: []seccomp.Condition{
				{Argument: 0, Operation: seccomp.BitsNotSet, Value: namespaceFlags},
			}})
			continue
		}
		allow = append(allow, name)
	}
	deny := seccomp.ActionErrno // EPERM (the library's only errno for a default)
	if m == Audit {
		deny = seccomp.ActionLog
	}
	groups := []seccomp.SyscallGroup{{Action: seccomp.ActionAllow, Names: allow}}
	if len(conditional) > 0 {
		groups = append(groups, seccomp.SyscallGroup{Action: seccomp.ActionAllow, NamesWithCondtions: conditional})
	}
	if p.NoNewNamespaces {
		// clone3 passes its flags in memory: ENOSYS makes libc use clone
		// (glibc's pthread_create tries clone3 first). Audit too: it is
		// not a call the process needs, and audit should run as enforce.
		groups = append(groups, seccomp.SyscallGroup{Action: errnoAction(unix.ENOSYS), Names: []string{"clone3"}})
	}
	return seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy:     seccomp.Policy{DefaultAction: deny, Syscalls: groups},
	}, nil
}

// LoadSeccomp installs p's allow-list on every thread (TSYNC).
func LoadSeccomp(m Mode, p Policy) error {
	f, err := Filter(m, p)
	if err != nil {
		return err
	}
	if !seccomp.Supported() {
		return fmt.Errorf("%s sandbox: seccomp: %w (this kernel has no seccomp filter support: run with --vmm-sandbox=off)", p.Name, errors.ErrUnsupported)
	}
	if err := seccomp.LoadFilter(f); err != nil {
		return fmt.Errorf("%s sandbox: seccomp: %w", p.Name, err)
	}
	return nil
}

func errnoAction(errno unix.Errno) seccomp.Action {
	return seccomp.Action(uint32(seccomp.ActionErrno) | uint32(errno))
}
