package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/confine"
	"github.com/loftd/loftd/internal/vmmproc"
)

// TestVMMConfinement: while a VM runs (loftd as root, the default
// --vmm-sandbox=enforce), QEMU and every virtiofsd run with no_new_privs
// and a seccomp filter, QEMU and the workspace's virtiofsd as non-root
// ids, and the helper (`loftd internal enter`) has confined itself; with
// --vmm-sandbox=off QEMU is root and unfiltered.
func TestVMMConfinement(t *testing.T) {
	for _, tt := range []struct {
		mode     confine.Mode
		confined bool
	}{{confine.Enforce, true}, {confine.Off, false}} {
		t.Run(string(tt.mode), func(t *testing.T) {
			w := newWorld(t)
			pid, wait := w.startLong("--vmm-sandbox=" + string(tt.mode))
			procs, err := vmmproc.Table("/proc")
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, p := range descendants(procs, pid) {
				kind := procKind(p)
				t.Logf("below loftd: %d %s %q", p.PID, p.Comm, p.Args)
				if kind == "" {
					continue
				}
				seen[kind]++
				st, err := confine.ReadStatus("/proc", p.PID)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s (pid %d, %s): %v", kind, p.PID, p.Comm, st)
				filtered := st.Seccomp == 2 && st.NoNewPrivs
				switch {
				case tt.confined && !filtered:
					t.Errorf("%s (pid %d): %v, want Seccomp 2 and NoNewPrivs 1", kind, p.PID, st)
				case tt.confined && kind != "helper" && kind != "virtiofsd root" && st.UID == 0:
					t.Errorf("%s (pid %d) runs as root (%v)", kind, p.PID, st)
				case !tt.confined && kind == "qemu" && (filtered || st.UID != 0):
					t.Errorf("qemu with the sandbox off: %v, want root without a filter", st)
				}
			}
			for _, kind := range []string{"helper", "qemu", "virtiofsd root", "virtiofsd share"} {
				if seen[kind] == 0 {
					t.Errorf("no %s process below loftd (pid %d); saw %v", kind, pid, seen)
				}
			}
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			wait()
		})
	}
}

// procKind names the VMM processes: the helper, QEMU, and virtiofsd for
// the task root (--root-share) or a share.
func procKind(p vmmproc.Proc) string {
	args := strings.Join(p.Args, " ")
	// Exec'd from an fd, comm is the fd's number: argv[0] names it.
	name := p.Comm
	if len(p.Args) > 0 {
		name = filepath.Base(p.Args[0])
	}
	switch {
	case strings.HasPrefix(name, "qemu-system"):
		return "qemu"
	case strings.Contains(name, "virtiofsd") && strings.Contains(args, "--modcaps"):
		return "virtiofsd share"
	case strings.Contains(name, "virtiofsd"):
		return "virtiofsd root"
	case strings.Contains(args, "internal enter"):
		return "helper"
	}
	return ""
}

// descendants are the processes below pid.
func descendants(procs []vmmproc.Proc, pid int) []vmmproc.Proc {
	var out []vmmproc.Proc
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, p := range procs {
			if p.PPID == cur {
				out = append(out, p)
				queue = append(queue, p.PID)
			}
		}
	}
	return out
}
