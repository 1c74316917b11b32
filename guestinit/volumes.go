package guestinit

import (
	"fmt"
	"os"

	"github.com/loftd/loftd/guestinit/contract"
	"golang.org/x/sys/unix"
)

// volumeSteps mount the extra virtiofs shares of LOFTD_VOLUMES (-v and
// agentbox's tool-state mounts), each at its target, read-only when asked:
// a read-only share is read-only in the guest's kernel, whatever the
// workload's privileges.
func (e *enter) volumeSteps() []Step {
	vols, err := contract.ParseVolumes(e.cfg.Env)
	if err != nil {
		return []Step{{Desc: "read " + contract.EnvVolumes, Do: func() error { return err }}}
	}
	var steps []Step
	for _, v := range vols {
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		desc := "mount -t virtiofs"
		if v.ReadOnly {
			flags |= unix.MS_RDONLY
			desc += " -o ro"
		}
		steps = append(steps, Step{Desc: fmt.Sprintf("%s %s %s", desc, v.Tag, v.Target), Do: func() error {
			if err := e.sys.MkdirAll(v.Target, 0o755); err != nil {
				return err
			}
			if err := e.sys.Mount(v.Tag, v.Target, "virtiofs", flags, ""); err != nil {
				return &os.PathError{Op: "mount virtiofs " + v.Tag, Path: v.Target, Err: err}
			}
			return nil
		}})
	}
	return steps
}
