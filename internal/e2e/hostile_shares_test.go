package e2e

// The hostile guest (issue 17): root in its VM (--root), it tries to get
// host privilege through what loftd shares. Each test runs as root and,
// where it applies, rootless.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hostileScript runs as guest root in /workspace. Every applet goes
// through /bin/busybox: the rootless world's image links only a few.
const hostileScript = `B=/bin/busybox; cd /workspace
$B cp $B suid; $B chmod 4755 suid; echo "chmod 4755 $?"
$B chown 1000 suid; $B chmod 4755 suid; echo "chown+chmod 4755 $?"
$B mknod null c 1 3; echo "mknod c $?"
$B mknod sda b 8 0; echo "mknod b $?"
$B touch g; $B chgrp 999 g; $B chmod 2755 g; echo "chmod 2755 $?"
$B mkdir sd; $B chmod 2775 sd; echo "chmod dir 2775 $?"
$B cp $B capfile; ./setfcap capfile
$B cp $B capfile3; $B chown 1000 capfile3; ./setfcap capfile3 1000
exit 0
`

// hostileRefusals are the lines hostileScript must print: each attempt
// refused (busybox exits 1).
var hostileRefusals = []string{"chmod 4755 1", "chown+chmod 4755 1", "mknod c 1", "mknod b 1", "chmod 2755 1", "chmod dir 2775 1"}

// TestHostileShareRoot: as root, guest root's setuid, setgid, mknod, group
// 999 and file capability through /workspace give the host nothing; the
// guest user's files are the workspace owner's.
func TestHostileShareRoot(t *testing.T) {
	w := newWorld(t)
	putSetfcap(t, w.workspace, guestUID, guestUID)
	status, out, errb := w.run("", "--root", "--", "sh", "-c", hostileScript)
	if status != 0 {
		t.Fatalf("loftd --root = %d\nstdout:\n%s\nstderr:\n%s", status, out, errb)
	}
	checkRefusals(t, out)
	if status, out, errb = w.run("", "--", "sh", "-c", "echo x > /workspace/devfile"); status != 0 {
		t.Fatalf("loftd as dev = %d %s %s", status, out, errb)
	}
	checkOwner(t, filepath.Join(w.workspace, "devfile"), guestUID, guestUID)
	checkHostileAftermath(t, w.workspace, rootShareRange(guestUID), rootShareRange(guestUID))
}

// TestHostileShareRootless: the same, rootless (the keep-id namespace maps
// guest root to the user's first subordinate id).
func TestHostileShareRootless(t *testing.T) {
	w := newRootlessWorld(t)
	putSetfcap(t, w.ws, w.uid, w.gid)
	out, errb, err := runRootless(w, "--root", "--", "/bin/busybox", "sh", "-c", hostileScript)
	if err != nil {
		t.Fatalf("rootless loftd --root: %v\nstdout:\n%s\nstderr:\n%s", err, out, errb)
	}
	checkRefusals(t, out)
	if out, errb, err = runRootless(w, "--", "/bin/busybox", "sh", "-c", "echo x > /workspace/devfile"); err != nil {
		t.Fatalf("rootless loftd as dev: %v %s %s", err, out, errb)
	}
	checkOwner(t, filepath.Join(w.ws, "devfile"), w.uid, w.gid)
	uids := idRange{owner: uint32(w.uid), start: w.user.SubUID.HostID, end: w.user.SubUID.HostID + w.user.SubUID.Size}
	gids := idRange{owner: uint32(w.gid), start: w.user.SubGID.HostID, end: w.user.SubGID.HostID + w.user.SubGID.Size}
	checkHostileAftermath(t, w.ws, uids, gids)
}

// TestHostileRootOwnedWorkspace: as root without sudo in a root-owned
// checkout, dev (uid 1000 in the guest) writes the workspace, its files
// land root's, and setuid is still impossible, for dev and guest root.
func TestHostileRootOwnedWorkspace(t *testing.T) {
	w := newWorld(t)
	if err := os.Chown(w.workspace, 0, 0); err != nil {
		t.Fatal(err)
	}
	c := w.cmd("--", "sh", "-c", "id -u; touch /workspace/x; echo touch $?; cp /bin/busybox /workspace/s; chmod 4755 /workspace/s; echo chmod $?")
	withoutSudo(c)
	status, out, errb := runWorld(w, c)
	if want := "1000\ntouch 0\nchmod 1\n"; status != 0 || out != want {
		t.Fatalf("loftd -- touch in a root-owned workspace = %d, %q, want %q\nstderr:\n%s", status, out, want, errb)
	}
	checkOwner(t, filepath.Join(w.workspace, "x"), 0, 0)
	// Guest root, and a file capability whose root id is dev's (host
	// root here): the kernel would store it as a plain capability.
	putSetfcap(t, w.workspace, 0, 0)
	c = w.cmd("--root", "--", "sh", "-c", "chmod 4755 /workspace/s; echo chmod $?; chmod 6755 /workspace/x; echo chmod $?; "+hostileScript)
	withoutSudo(c)
	status, out, errb = runWorld(w, c)
	if status != 0 || !strings.HasPrefix(out, "chmod 1\nchmod 1\n") {
		t.Errorf("loftd --root chmod 4755 in a root-owned workspace = %d, %q, want both refused\nstderr:\n%s", status, out, errb)
	}
	checkRefusals(t, out)
	checkHostileAftermath(t, w.workspace, rootShareRange(0), rootShareRange(0))
}

// TestHostilePrivateWorkspace: a 0700 workspace of another user works for
// dev, who is that user; named as someone else (--uid), it is a setup
// error that names the directory, its owner and mode, not a bare 126.
func TestHostilePrivateWorkspace(t *testing.T) {
	w := newWorld(t)
	if err := os.Chown(w.workspace, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	chmod(t, 0o700, w.workspace)
	c := w.cmd("--", "sh", "-c", "id -u; touch /workspace/x && echo ok")
	withoutSudo(c)
	status, out, errb := runWorld(w, c)
	if status != 0 || out != "1234\nok\n" {
		t.Fatalf("loftd in a 0700 workspace of uid 1234 = %d, %q, want 1234 and ok\nstderr:\n%s", status, out, errb)
	}
	checkOwner(t, filepath.Join(w.workspace, "x"), 1234, 1234)
	status, _, errb = w.run("", "--uid", "1000", "--gid", "1000", "--", "true")
	for _, want := range []string{w.workspace, "uid 1234", "0700", "--uid 1234"} {
		if status != 125 || !strings.Contains(errb, want) {
			t.Errorf("loftd --uid 1000 in a 0700 workspace of uid 1234 = %d, stderr %q; want 125 and %q", status, errb, want)
		}
	}
}

// TestHostileUIDRange: --uid and --gid outside 0..2^32-2 are usage errors.
func TestHostileUIDRange(t *testing.T) {
	w := newWorld(t)
	for _, args := range [][]string{{"--uid", "-5"}, {"--gid", "-5"}, {"--uid", "4294967296"}, {"--gid", "4294967295"}} {
		status, _, errb := w.run("", append(args, "--", "true")...)
		if status != 2 || !strings.Contains(errb, args[0]) {
			t.Errorf("loftd %s = %d, stderr %q; want usage error 2", strings.Join(args, " "), status, errb)
		}
	}
}

// roScript tries to write a :ro volume: remounted rw, and through the tag
// mounted a second time.
const roScript = `B=/bin/busybox
$B mount -o remount,rw /mnt/a; echo x > /mnt/a/f
$B mkdir -p /m2; $B mount -t virtiofs loftd-vol0 /m2 && echo y > /m2/f
$B cat /mnt/a/f`

func roVolume(t *testing.T, dir string, uid, gid int) string {
	t.Helper()
	vol := filepath.Join(dir, "ro-vol")
	writeFile(t, filepath.Join(vol, "f"), "host\n", 0o644)
	for _, p := range []string{vol, filepath.Join(vol, "f")} {
		if err := os.Lchown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return vol
}

func checkUnchanged(t *testing.T, path string) {
	t.Helper()
	if b, err := os.ReadFile(path); err != nil || string(b) != "host\n" {
		t.Errorf("%s on the host after the guest wrote its :ro volume: %q, %v; want it unchanged", path, b, err)
	}
}

// TestHostileReadOnlyVolume: :ro holds on the host, whatever guest root
// remounts.
func TestHostileReadOnlyVolume(t *testing.T) {
	w := newWorld(t)
	vol := roVolume(t, t.TempDir(), guestUID, guestUID)
	status, out, errb := w.run("", "--root", "-v", vol+":/mnt/a:ro", "--", "sh", "-c", roScript)
	if status != 0 || out != "host\n" {
		t.Errorf("loftd --root -v DIR:/mnt/a:ro = %d, %q, want host\nstderr:\n%s", status, out, errb)
	}
	checkUnchanged(t, filepath.Join(vol, "f"))
}

func TestHostileReadOnlyVolumeRootless(t *testing.T) {
	w := newRootlessWorld(t)
	vol := roVolume(t, w.base, w.uid, w.gid)
	out, errb, err := runRootless(w, "--root", "-v", vol+":/mnt/a:ro", "--", "/bin/busybox", "sh", "-c", roScript)
	if err != nil || out != "host\n" {
		t.Errorf("rootless loftd --root -v DIR:/mnt/a:ro: %v, %q, want host\nstderr:\n%s", err, out, errb)
	}
	checkUnchanged(t, filepath.Join(vol, "f"))
}

// oddName holds every byte that once reached virtiofsd's -o list or another
// program's options: ',' '=' ':' '\' a newline and a leading '-'.
const oddName = "-q,source=.,xattr=1:a\\b\nc"

// oddVolName is oddName without ':' (-v splits on it).
const oddVolName = "-v,source=.,xattr=1\\b\nc"

const oddScript = `B=/bin/busybox; $B ls /workspace /mnt/v; echo guest > /workspace/out`

// TestHostileOddPaths: a workspace and a volume whose names carry option
// syntax are served as themselves (before, a workspace named
// q,source=/,xattr served the host's /).
func TestHostileOddPaths(t *testing.T) {
	w := newWorld(t)
	base := t.TempDir()
	ws, vol := filepath.Join(base, oddName), filepath.Join(base, oddVolName)
	writeFile(t, filepath.Join(ws, "ws-marker"), "", 0o644)
	writeFile(t, filepath.Join(vol, "vol-marker"), "", 0o644)
	if err := os.Chown(ws, guestUID, guestUID); err != nil {
		t.Fatal(err)
	}
	status, out, errb := w.run("", "--root", "--workspace", ws, "-v", vol+":/mnt/v", "--", "sh", "-c", oddScript)
	if want := "/mnt/v:\nvol-marker\n\n/workspace:\nws-marker\n"; status != 0 || out != want {
		t.Errorf("loftd with workspace %q and volume %q = %d, %q, want %q\nstderr:\n%s", ws, vol, status, out, want, errb)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "out")); err != nil || string(b) != "guest\n" {
		t.Errorf("the guest's file in the odd workspace: %q, %v", b, err)
	}
}

func TestHostileOddPathsRootless(t *testing.T) {
	w := newRootlessWorld(t)
	ws, vol := filepath.Join(w.base, oddName), filepath.Join(w.base, oddVolName)
	writeFile(t, filepath.Join(ws, "ws-marker"), "", 0o644)
	writeFile(t, filepath.Join(vol, "vol-marker"), "", 0o644)
	for _, p := range []string{ws, vol} {
		if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", w.uid, w.gid), p).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v %s", p, err, out)
		}
	}
	out, errb, err := runRootless(w, "--root", "--workspace", ws, "-v", vol+":/mnt/v", "--", "/bin/busybox", "sh", "-c", oddScript)
	if want := "/mnt/v:\nvol-marker\n\n/workspace:\nws-marker\n"; err != nil || out != want {
		t.Errorf("rootless loftd with workspace %q and volume %q: %v, %q, want %q\nstderr:\n%s", ws, vol, err, out, want, errb)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "out")); err != nil || string(b) != "guest\n" {
		t.Errorf("the guest's file in the odd workspace: %q, %v", b, err)
	}
}

// TestHostileShareFlavors runs the hostile script and the :ro attempts
// against each virtiofsd flavor (each handles the fd path, the filter, the
// namespace and read-only its own way), as root, picked with
// LOFTD_VIRTIOFSD.
func TestHostileShareFlavors(t *testing.T) {
	for _, f := range virtiofsdFlavors(t) {
		flavor := f.name
		t.Run(flavor, func(t *testing.T) {
			w := newWorld(t)
			putSetfcap(t, w.workspace, guestUID, guestUID)
			vol := roVolume(t, t.TempDir(), guestUID, guestUID)
			c := withVirtiofsd(w.cmd("--debug", "--root", "-v", vol+":/mnt/a:ro", "--", "sh", "-c", strings.Replace(hostileScript, "exit 0\n", roScript+"\n", 1)), f.path)
			status, out, errb := runWorld(w, c)
			if status != 0 || !strings.HasSuffix(out, "host\n") {
				t.Fatalf("loftd --root with the %s virtiofsd = %d\nstdout:\n%s\nstderr:\n%s", flavor, status, out, errb)
			}
			if !strings.Contains(errb, "virtiofsd="+f.path) {
				t.Errorf("--debug does not show the %s virtiofsd %s serving the shares:\n%s", flavor, f.path, errb)
			}
			checkRefusals(t, out)
			checkHostileAftermath(t, w.workspace, rootShareRange(guestUID), rootShareRange(guestUID))
			checkUnchanged(t, filepath.Join(vol, "f"))
		})
	}
}
