package virtiofs

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/containers/storage/pkg/reexec"
	"github.com/loftd/loftd/launch"
)

// WrapperName is the wrapper's argv[0]: loftd's main (buildah.InitReexec,
// which runs reexec.Init) dispatches it before anything else, and so must
// the TestMain of a package that starts virtiofsd.
const WrapperName = "loftd-virtiofsd-wrapper"

func init() { reexec.Register(WrapperName, wrapperMain) }

// wrapperMain is `loftd-virtiofsd-wrapper VIRTIOFSD ARGS...`: it installs
// the filter on itself, then becomes virtiofsd. It does nothing else, so
// that it runs in whatever namespace and with whatever ids it was started
// in. It never returns.
func wrapperMain() {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "%s: want VIRTIOFSD [ARGS...] (loftd starts this itself)\n", WrapperName)
		os.Exit(2)
	}
	runtime.LockOSThread()
	if err := InstallFilter(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", WrapperName, err)
		os.Exit(1)
	}
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "%s: exec %s: %v\n", WrapperName, os.Args[1], err)
	os.Exit(1)
}

// self is the running binary, which is the wrapper. Through the magic
// link, not its path: the wrapper starts as its user namespace's root,
// which may not search the directories above loftd (a 0700 ~/go/bin, a
// private temporary directory), and inside the rootless keep-id namespace
// the link's text is not even a path.
const self = "/proc/self/exe"

// Command is virtiofsd (with args) started through the wrapper: this
// binary, re-executed (WrapperName). With ids, the wrapper starts in a new user
// namespace with those maps, as its root (not host root: ns 0 is never
// mapped to host 0); run it from a process that can write any map (real
// root). The caller adds its own SysProcAttr fields (Pdeathsig, Setpgid).
func Command(ids *launch.ShareIDs, virtiofsd string, args ...string) *exec.Cmd {
	cmd := exec.Command(self, append([]string{virtiofsd}, args...)...)
	cmd.Args[0] = WrapperName
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if ids != nil {
		a := cmd.SysProcAttr
		a.Cloneflags = syscall.CLONE_NEWUSER
		a.UidMappings, a.GidMappings = sysMaps(ids.UIDs), sysMaps(ids.GIDs)
		a.GidMappingsEnableSetgroups = true
		// Become the namespace's root and drop loftd's supplementary
		// groups: they are host groups and would keep their access.
		a.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}
	}
	return cmd
}

func sysMaps(m []launch.IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.Guest), HostID: int(e.Host), Size: int(e.Size)}
	}
	return out
}
