package e2e

// Helpers of the hostile-guest suite (hostile_shares_test.go): the file
// capability tool, the ids a share may give a file, the host-side checks.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/loftd/loftd/helper/virtiofs"
	"github.com/loftd/loftd/rootfs"
	"golang.org/x/sys/unix"
)

var setfcap struct {
	once sync.Once
	path string
	err  error
}

// setfcapBin builds testdata/setfcap, static.
func setfcapBin(t *testing.T) string {
	t.Helper()
	setfcap.once.Do(func() {
		setfcap.path = filepath.Join(bins.dir, "setfcap")
		cmd := exec.Command("go", "build", "-o", setfcap.path, "./testdata/setfcap")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			setfcap.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if setfcap.err != nil {
		t.Fatalf("go build testdata/setfcap: %v", setfcap.err)
	}
	return setfcap.path
}

// putSetfcap copies the helper into the workspace, owned by uid:gid.
func putSetfcap(t *testing.T, ws string, uid, gid int) {
	t.Helper()
	dst := filepath.Join(ws, "setfcap")
	copyExec(t, setfcapBin(t), dst)
	if err := os.Lchown(dst, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// idRange is the host ids a share may give a file: the owner's and a
// subordinate range.
type idRange struct {
	owner      uint32
	start, end uint32 // [start, end)
}

func (r idRange) holds(id uint32) bool { return id == r.owner || (id >= r.start && id < r.end) }

// rootShareRange is where guest ids other than the user's land as root.
func rootShareRange(owner uint32) idRange {
	sub := virtiofs.DefaultRange
	if uids, _, err := rootfs.SubIDs("root"); err == nil {
		if r, ok := rootfs.FirstSubID(uids); ok {
			sub = virtiofs.Range{Start: r.HostID, Size: r.Size}
		}
	}
	return idRange{owner: owner, start: sub.Start, end: sub.Start + sub.Size}
}

// checkHostileAftermath walks the workspace on the host: no setuid or
// setgid file, no device node, no owner or group outside ids (so no host
// root, no host group 999), and no file capability the host would honour.
func checkHostileAftermath(t *testing.T, ws string, uids, gids idRange) {
	t.Helper()
	err := filepath.WalkDir(ws, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if path != ws && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			t.Errorf("%s on the host: mode %v, owner %d:%d: a setuid/setgid file came out of the share", path, fi.Mode(), st.Uid, st.Gid)
		}
		if fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0 {
			t.Errorf("%s on the host is a device node (%v)", path, fi.Mode())
		}
		if !uids.holds(st.Uid) || !gids.holds(st.Gid) {
			t.Errorf("%s on the host: owner %d:%d, want the owner's %d:%d or a subordinate id", path, st.Uid, st.Gid, uids.owner, gids.owner)
		}
		checkNoHostCap(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkNoHostCap: a security.capability the guest wrote is either gone or
// namespaced (revision 3, its root id not host root): not effective for a
// host user who runs the file.
func checkNoHostCap(t *testing.T, path string) {
	t.Helper()
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(path, "security.capability", buf)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP) {
		return
	}
	if err != nil {
		t.Errorf("%s: read security.capability: %v", path, err)
		return
	}
	rev := binary.LittleEndian.Uint32(buf) >> 24
	if rev != 3 || n < 24 || binary.LittleEndian.Uint32(buf[20:]) == 0 {
		t.Errorf("%s on the host has a file capability a host user gets (revision %d, % x)", path, rev, buf[:n])
	}
}

func checkRefusals(t *testing.T, out string) {
	t.Helper()
	for _, want := range hostileRefusals {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("guest output lacks %q (the attempt was not refused):\n%s", want, out)
		}
	}
}

func runRootless(w *rootlessWorld, args ...string) (stdout, stderr string, err error) {
	c := w.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err = c.Run()
	return out.String(), errb.String(), err
}

func checkOwner(t *testing.T, path string, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s on the host: owner %d:%d, want %d:%d", path, st.Uid, st.Gid, uid, gid)
	}
}

// withoutSudo drops SUDO_UID and SUDO_GID from c's environment, as a root
// shell that did not come through sudo (CI, a container) has none.
func withoutSudo(c *exec.Cmd) {
	env := c.Env[:0]
	for _, kv := range c.Env {
		if !strings.HasPrefix(kv, "SUDO_UID=") && !strings.HasPrefix(kv, "SUDO_GID=") {
			env = append(env, kv)
		}
	}
	c.Env = env
}

func runWorld(w *world, c *exec.Cmd) (int, string, string) {
	w.t.Helper()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil && c.ProcessState == nil {
		w.t.Fatalf("loftd: %v", err)
	}
	return c.ProcessState.ExitCode(), out.String(), errb.String()
}
