package helper

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loftd/loftd/internal/atomicfile"
	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/launch"
)

// RecordName is the task directory's record of how each VMM process was
// confined (Landlock is not visible in /proc): `loftd ps --debug` reads it.
const RecordName = "confinement.json"

// Record is RecordName's content: the helper's own confinement and what
// it asked for QEMU (its wrapper) and virtiofsd.
type Record struct {
	// PID is the helper's: an audit run's kernel records name it.
	PID    int               `json:"pid"`
	Helper confine.Applied   `json:"helper"`
	Others map[string]string `json:"others,omitempty"`
}

// helperPolicy is what the helper keeps once it is confined: after setup
// under QEMU (QEMU, virtiofsd and passt run; the helper moves bytes
// between the ports and stdio, waits and stops them), and before
// krun_start_enter under libkrun (the helper becomes the VMM: KVM, the
// disks, and the shares its in-process virtiofs serves). Nothing here
// execs, mounts, ptraces or makes a namespace; under QEMU it keeps no
// access to the disks or shares at all, only to the task directory (its
// logs). To extend it (a control socket accepted after boot, a user-mode
// network in the helper), add the paths it opens to Paths and its calls
// to a confine.Group: `--vmm-sandbox=audit` then `loftd internal
// seccomp-audit` lists them.
func helperPolicy(p *launch.Plan, taskDir string) confine.Policy {
	pol := confine.Policy{
		Name:            "helper",
		Paths:           []confine.PathRule{{Path: taskDir, Access: confine.ReadWrite}},
		NoNewNamespaces: true,
	}
	groups := []confine.Group{confine.GoRuntime, confine.FileIO, confine.Children, confine.Sockets}
	if p.VMM == launch.VMMKrun {
		groups = append(groups, confine.KrunVMM)
		if p.Network.Mode == launch.NetworkTSI || len(p.VsockPorts) > 0 {
			// TSI proxies the guest's sockets; vsock ports connect
			// to the plan's UNIX sockets.
			groups = append(groups, confine.KrunNet)
			pol.AllowTCP = p.Network.Mode == launch.NetworkTSI
		}
		pol.ScopeSignals = true
		// libkrun opens the disks and serves the root and shares itself
		// (under QEMU, QEMU and virtiofsd already hold them).
		pol.Paths = append(pol.Paths, confine.PathRule{Path: p.Root, Access: confine.ReadWrite})
		for _, d := range p.Disks {
			pol.Paths = append(pol.Paths, confine.PathRule{Path: d.Path, Access: rw(d.ReadOnly)})
		}
		for _, s := range p.Shares {
			pol.Paths = append(pol.Paths, confine.PathRule{Path: s.Path, Access: rw(s.ReadOnly)})
		}
		for _, v := range p.VsockPorts {
			pol.Paths = append(pol.Paths, confine.PathRule{Path: filepath.Dir(v.Path), Access: confine.ReadWrite})
		}
		pol.Paths = append(pol.Paths,
			confine.PathRule{Path: "/dev/kvm", Access: confine.ReadWrite, Optional: true},
			confine.PathRule{Path: "/dev/net/tun", Access: confine.ReadWrite, Optional: true},
			confine.PathRule{Path: "/sys/devices/system/cpu", Access: confine.Read, Optional: true},
			confine.PathRule{Path: "/proc/" + strconv.Itoa(os.Getpid()), Access: confine.Read, Optional: true})
		for _, lib := range mappedFiles() {
			pol.Paths = append(pol.Paths, confine.PathRule{Path: lib, Access: confine.Read, Optional: true})
		}
	}
	pol.Paths = append(pol.Paths,
		confine.PathRule{Path: "/dev/null", Access: confine.ReadWrite, Optional: true},
		confine.PathRule{Path: "/dev/urandom", Access: confine.Read, Optional: true})
	pol.Syscalls = confine.AllowList(groups...)
	return pol
}

func rw(readOnly bool) confine.Access {
	if readOnly {
		return confine.Read
	}
	return confine.ReadWrite
}

// mappedFiles are the files mapped into this process (the libraries, and
// libkrunfw's kernel once libkrun loaded it): libkrun may open them again.
func mappedFiles() []string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "/") || seen[fields[5]] {
			continue
		}
		seen[fields[5]] = true
		out = append(out, fields[5])
	}
	return out
}

// confine applies the helper's policy in the plan's mode and records it
// in the task directory. Fail closed: an error here means no boot.
func (h *Helper) confine(p *launch.Plan, others map[string]string) error {
	mode, err := confine.ParseMode(string(p.Sandbox))
	if err != nil {
		return err
	}
	pol := helperPolicy(p, h.TaskDir)
	// Record before confining: the record is written with a temporary
	// file and a rename, and the policy need not allow either.
	rec := Record{PID: os.Getpid(), Helper: confine.Applied{Mode: mode, LandlockABI: confine.LandlockABI(),
		Landlock: mode == confine.Enforce && confine.LandlockABI() > 0, Seccomp: mode != confine.Off, NoNewPrivs: mode != confine.Off}, Others: others}
	if data, err := json.MarshalIndent(rec, "", "  "); err == nil {
		if err := atomicfile.WriteFile(filepath.Join(h.TaskDir, RecordName), append(data, '\n'), 0o644); err != nil {
			if h.Log != nil {
				h.Log.Warn("record confinement", "err", err)
			}
		}
	}
	applied, err := confine.Apply(mode, pol, h.Log)
	if err != nil {
		return fmt.Errorf("%w (--vmm-sandbox=off runs without it)", err)
	}
	if h.Log != nil {
		h.Log.Debug("helper confined", "mode", mode, "landlock_abi", applied.LandlockABI, "landlock", applied.Landlock, "seccomp", applied.Seccomp)
	}
	if afterConfine != nil {
		afterConfine(h)
	}
	return nil
}

// afterConfine is nil in loftd: only the helper's test binary sets it
// (sandbox_test.go), to try what a confined helper must not do.
var afterConfine func(*Helper)
