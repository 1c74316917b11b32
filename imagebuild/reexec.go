package imagebuild

import (
	"fmt"
	"os"
	"runtime"

	"github.com/containers/buildah"
	"golang.org/x/sys/unix"
)

// chrootRuntime is the name (argv[0]) under which Buildah's chroot
// isolation re-executes this binary to run a RUN step: that process starts
// "buildah-chroot-exec", which sets up the chroot and starts the step's
// command. Each of them has PR_SET_PDEATHSIG, but the command's own
// children do not, so a killed build left them running on the host.
const chrootRuntime = "buildah-chroot-runtime"

// InitReexec dispatches Buildah's re-exec helpers, as buildah.InitReexec
// does, and reports whether this process was one (then main returns).
// Mains and TestMains that build images call it first thing.
//
// As chrootRuntime, it first puts the children of its thread into a new
// PID namespace, so "buildah-chroot-exec" is that namespace's init: when
// it dies — at the end of the step, or by the parent-death signal chain
// from a killed loftd — the kernel kills every process left in the
// namespace. Buildah's chroot isolation makes no PID namespace of its own.
// The step still sees the host's /proc (Buildah binds it), where /proc/self
// works; only its own pids differ from /proc's names.
func InitReexec() bool {
	if os.Args[0] == chrootRuntime {
		// unshare(CLONE_NEWPID) applies to the calling thread's future
		// children; Buildah starts the helper from the main goroutine,
		// which stays on this thread from here on.
		runtime.LockOSThread()
		// Go checks once, on the first process it starts or finds,
		// whether pidfds work, by cloning a child that exits at once.
		// In the new namespace that child would be init, and its exit
		// would make every later fork there fail with ENOMEM: run the
		// check here, before the unshare.
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Release()
		}
		if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
			fmt.Fprintf(os.Stderr, "loftd: RUN step: new PID namespace: %v (processes the step leaves may outlive a killed build)\n", err)
		}
	}
	return buildah.InitReexec()
}
