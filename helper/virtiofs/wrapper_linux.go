package virtiofs

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/containers/storage/pkg/reexec"
	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// WrapperName is the wrapper's argv[0]: loftd's main (buildah.InitReexec,
// which runs reexec.Init) dispatches it before anything else, and so must
// the TestMain of a package that starts virtiofsd.
const WrapperName = "loftd-virtiofsd-wrapper"

func init() { reexec.Register(WrapperName, wrapperMain) }

// wrapperMain is `loftd-virtiofsd-wrapper --exec-fd=N ARGV...`: it
// installs the filter on itself, then execs the virtiofsd it inherited as
// fd N (which virtiofsd does not inherit) with ARGV. It does nothing else,
// so that it runs in whatever namespace and with whatever ids it was
// started in. It never returns.
func wrapperMain() {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, WrapperName+": "+format+"\n", args...)
		os.Exit(1)
	}
	var fd int
	if len(os.Args) < 3 {
		fail("want --exec-fd=N ARGV... (loftd starts this itself)")
	}
	if _, err := fmt.Sscanf(os.Args[1], "--exec-fd=%d", &fd); err != nil || fd < 3 {
		fail("bad %q: want --exec-fd=N, N >= 3", os.Args[1])
	}
	argv, install := os.Args[2:], InstallFilter
	if len(argv) > 1 && argv[1] == rootShareFlag { // after virtiofsd's argv[0]
		argv, install = append([]string{argv[0]}, argv[2:]...), InstallRootFilter
	}
	runtime.LockOSThread()
	unix.CloseOnExec(fd)
	if err := install(); err != nil {
		fail("%v", err)
	}
	err := syscall.Exec(fdLink(fd), argv, os.Environ())
	fail("exec %s (fd %d): %v", os.Args[2], fd, err)
}

// self is the running binary, which is the wrapper. Through the magic
// link, not its path: the wrapper starts as its user namespace's root,
// which may not search the directories above loftd (a 0700 ~/go/bin, a
// private temporary directory), and inside the rootless keep-id namespace
// the link's text is not even a path. virtiofsd is reached through an fd
// for the same reason.
const self = "/proc/self/exe"

// Command is virtiofsd (with args, and files as its fds 3, 4, …) started
// through the wrapper: this binary, re-executed (WrapperName). virtiofsd
// itself is opened here and handed over as the next fd, for the same
// reason as self. With ids, the wrapper starts in a new user namespace
// with those maps, as its root (not host root: ns 0 is never mapped to
// host 0); run it from a process that can write any map (real root). The
// caller starts it with internal/child (which adds the death signal and
// the process group to SysProcAttr), and calls done once it started.
func Command(ids *launch.ShareIDs, virtiofsd string, files []*os.File, args ...string) (cmd *exec.Cmd, done func(), err error) {
	fd, err := unix.Open(virtiofsd, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open virtiofsd", Path: virtiofsd, Err: err}
	}
	exe := os.NewFile(uintptr(fd), virtiofsd)
	execFD := 3 + len(files)
	cmd = exec.Command(self, append([]string{fmt.Sprintf("--exec-fd=%d", execFD), virtiofsd}, args...)...)
	cmd.Args[0] = WrapperName
	cmd.ExtraFiles = append(append([]*os.File{}, files...), exe)
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
	return cmd, func() { exe.Close() }, nil
}

// rootShareFlag tells the wrapper it serves the task root: RootPolicy
// instead of the share guard (the image's setuid files live there).
const rootShareFlag = "--root-share"

// CommandRoot is the task root's virtiofsd through the wrapper: in
// loftd's namespace and ids (the root keeps the image's ownership), with
// no_new_privs and RootPolicy.
func CommandRoot(virtiofsd string, files []*os.File, args ...string) (cmd *exec.Cmd, done func(), err error) {
	return Command(nil, virtiofsd, files, append([]string{rootShareFlag}, args...)...)
}

func sysMaps(m []launch.IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.Guest), HostID: int(e.Host), Size: int(e.Size)}
	}
	return out
}
