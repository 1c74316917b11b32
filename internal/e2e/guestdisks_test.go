package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/loftd/loftd/rootfs/rootfstest"
)

// The default image, built once (offline, from scripts/make-base's tar)
// into a state directory every test of this file shares: a build installs
// Debian packages and takes minutes. Each test has its own workspace, so
// its own disks.
var defaultImageState struct {
	once sync.Once
	dir  string
	log  string
	err  error
}

// defaultImageWorld is a world whose state holds localhost/loftd:latest.
func defaultImageWorld(t testing.TB) *world {
	t.Helper()
	w := newWorld(t)
	base := debianBase(t)
	s := &defaultImageState
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp(bins.dir, "default-image-state-")
		if s.err != nil {
			return
		}
		w.state = s.dir
		for _, args := range [][]string{{"image", "import", base}, {"image", "build", "--base", "localhost/debian-base:bookworm"}} {
			c := w.cmd()
			c.Args = append([]string{bins.loftd}, args...)
			out, err := c.CombinedOutput()
			if err != nil {
				s.err, s.log = err, "loftd "+strings.Join(args, " ")+":\n"+string(out)
				return
			}
		}
	})
	if s.err != nil {
		t.Fatalf("default image: %v\n%s", s.err, s.log)
	}
	w.state = s.dir
	return w
}

// session runs a loftd session of the default image with --profile and
// fails the test unless it exits 0.
func (w *world) session(script string) (stdout, stderr string) {
	w.t.Helper()
	args := []string{"--vmm", "qemu", "--image", "localhost/loftd:latest", "--profile", "--", "sh", "-c", script}
	status, stdout, stderr := w.run("", args...)
	if status != 0 {
		w.t.Fatalf("loftd -- sh -c %q = %d\nstdout:\n%s\nstderr:\n%s", script, status, stdout, stderr)
	}
	return stdout, stderr
}

// asUser runs script as the guest user (uid 1000: the host runs as root
// without SUDO_UID) with the environment a login gives it, whether the
// workload runs as root (before the privilege drop) or as the user.
// Until the guest init creates the user (the identity step), the test
// adds dev to /etc/passwd itself: newuidmap wants the caller's name.
func asUser(script string) string {
	return `if [ "$(id -u)" = 0 ]; then grep -q "^dev:" /etc/passwd || { echo "dev:x:1000:1000::/home/dev:/bin/sh" >> /etc/passwd; echo "dev:x:1000:" >> /etc/group; }; ` +
		`exec setpriv --reuid=1000 --regid=1000 --clear-groups env HOME=/home/dev USER=dev ` +
		`XDG_RUNTIME_DIR=/run/user/1000 XDG_CONFIG_HOME=/home/dev/.config sh -c '` + script + `'; else ` + script + `; fi`
}

func mustMatch(t *testing.T, what, out, pattern string) []string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s: output does not match %q:\n%s", what, pattern, out)
	}
	return m
}

// TestNixImageContent: /nix is the image's /nix with the nix disk over it:
// what the image has is visible, what a run adds persists in the
// workspace, not in the image.
func TestNixImageContent(t *testing.T) {
	w := newWorld(t)
	if err := os.MkdirAll(filepath.Join(w.root, "nix"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.root, "nix", "from-image"), []byte("image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(script string) string {
		t.Helper()
		// --root: /nix is root's (the user reaches the store through the
		// daemon); the test writes into it directly.
		status, out, stderr := w.run("", "--vmm", "qemu", "--root", "--", "sh", "-c", script)
		if status != 0 {
			t.Fatalf("loftd --root -- sh -c %q = %d\n%s\n%s", script, status, out, stderr)
		}
		return out
	}
	out := run("cat /nix/from-image; echo run1 > /nix/added; grep ' /nix ' /proc/mounts | cut -d' ' -f3; stat -c '%a %G' /nix/store")
	// A busybox image has no Nix: no nixbld group is made for it (the
	// default image's /nix/store is 1775 root:nixbld: TestNixStore).
	if out != "image\noverlay\n1775 root\n" {
		t.Errorf("run 1: got %q; want the image's file, /nix an overlay, /nix/store 1775 root", out)
	}
	out = run("cat /nix/from-image /nix/added")
	if out != "image\nrun1\n" {
		t.Errorf("run 2: got %q; want the image's file and run 1's", out)
	}
	if _, err := os.Stat(filepath.Join(w.root, "nix", "added")); err == nil {
		t.Errorf("run 1's /nix/added reached the image's root %s; want it on the nix disk only", w.root)
	}
}

// TestNixStore: a store path added offline in one session is there, valid,
// in the next; reset-nix --force forgets it.
func TestNixStore(t *testing.T) {
	w := defaultImageWorld(t)
	out, stderr := w.session("echo loftd-nix-test > /tmp/f && nix-store --add /tmp/f && echo NIX_REMOTE=$NIX_REMOTE && cat /run/loftd/nix-prep.status")
	path := mustMatch(t, "run 1", out, `(/nix/store/[a-z0-9]{32}-f)\n`)[1]
	if !strings.Contains(out, "NIX_REMOTE=daemon") || !strings.Contains(out, "nix-daemon pid") {
		t.Errorf("run 1: want NIX_REMOTE=daemon and a started nix-daemon:\n%s", out)
	}
	t.Logf("run 1 profile:\n%s", profileLines(stderr))
	out, _ = w.session("nix-store --verify-path " + path + " && cat " + path)
	if out != "loftd-nix-test\n" {
		t.Errorf("run 2: verify and cat %s = %q; want the content and no complaint", path, out)
	}
	c := w.cmd()
	c.Args = []string{bins.loftd, "reset-nix", "--force", "--workspace", w.workspace}
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("loftd reset-nix --force: %v\n%s", err, b)
	}
	out, _ = w.session("if [ -e " + path + " ]; then echo still there; else echo gone; fi")
	if out != "gone\n" {
		t.Errorf("run 3 after reset-nix: %s is %q; want gone", path, out)
	}
}

// busyboxArchive writes an OCI archive of a busybox image into the
// workspace, for podman load (no registry here).
func busyboxArchive(t testing.TB, workspace string) {
	t.Helper()
	layout := filepath.Join(t.TempDir(), "layout")
	rootfstest.Build(t, rootfstest.Spec{Dir: layout, Tag: "latest", NoDefaults: true, Files: []rootfstest.File{
		{Path: "/bin", Mode: os.ModeDir | 0o755},
		{Path: "/bin/busybox", Mode: 0o755, HostPath: "/bin/busybox"},
		{Path: "/bin/sh", Link: "busybox"},
		{Path: "/bin/echo", Link: "busybox"},
		{Path: "/bin/cat", Link: "busybox"},
		{Path: "/bin/true", Link: "busybox"},
		{Path: "/data", Mode: os.ModeDir | 0o755},
	}})
	out := filepath.Join(workspace, "bb.tar")
	if b, err := exec.Command("tar", "-C", layout, "-cf", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar %s: %v\n%s", layout, err, b)
	}
	if err := os.Chmod(out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPodman: rootless Podman of the guest user on the containers disk:
// load, run (also with --log-level=debug, which needs /dev/log), the
// docker shim, the Docker API socket, volumes, and images that survive
// the session.
func TestPodman(t *testing.T) {
	w := defaultImageWorld(t)
	busyboxArchive(t, w.workspace)
	script := `set -e
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
podman info --format "INFO {{.Host.Security.Rootless}} {{.Store.GraphDriverName}} {{.Store.GraphRoot}}"
ref=$(podman load -q -i /workspace/bb.tar | sed "s/^[^:]*: //")
podman tag "$ref" localhost/bb
s=$(date +%s%N); podman run --rm localhost/bb echo hello; echo "PODMAN_RUN_MS $(ms $s)"
docker run --rm localhost/bb echo docker-hello
echo "CONMON_TIMEOUTS $(podman --log-level=debug run --rm localhost/bb true 2>&1 | grep -c "Exceeded conmon timeout")"
podman run --rm -v vol:/data localhost/bb sh -c "echo kept > /data/f"
podman run --rm -v vol:/data localhost/bb cat /data/f
curl -s --unix-socket /run/user/1000/podman/podman.sock http://d/_ping; echo
cat /run/loftd/podman-prep.status`
	// The init makes the user's pause process (sleep in a user namespace
	// of theirs) in the background, once the guest is idle; the check
	// waits for it idly (a sleep of 1 s between looks; a loop of
	// `sleep 0.1` keeps a TCG guest a third busy), at most 60 s, before
	// any podman of the workload could make its own.
	check := `stat -c "OWNER %u %n" /home/dev/.config/containers/storage.conf /home/dev/.local/share/containers; grep " /home/dev/.local/share/containers " /proc/mounts | cut -d" " -f3,4; ` +
		`p=/run/user/1000/libpod/tmp/pause.pid; for i in $(seq 60); do [ -s $p ] && break; sleep 1; done; echo "PAUSE $(cat /proc/$(cat $p)/comm) $(awk '{printf "%s:%s:%s ", $1, $2, $3}' /proc/$(cat $p)/uid_map)"; `
	out, stderr := w.session(check + asUser(script))
	t.Logf("run 1:\n%s\nprofile:\n%s", out, profileLines(stderr))
	info := mustMatch(t, "podman info", out, `INFO (\S+) (\S+) (\S+)`)
	if info[1] != "true" || info[2] != "btrfs" || info[3] != "/home/dev/.local/share/containers/storage" {
		t.Errorf("podman info: rootless %s, driver %s, graphroot %s; want true, btrfs, the containers disk", info[1], info[2], info[3])
	}
	for _, want := range []string{"OWNER 1000 /home/dev/.config/containers/storage.conf", "OWNER 1000 /home/dev/.local/share/containers\n",
		"btrfs rw,", "user_subvol_rm_allowed", "\nhello\n", "\ndocker-hello\n", "\nkept\n", "\nOK\n", "PODMAN_RUN_MS",
		// --log-level=debug gives conmon's exit command --syslog: without
		// the guest's /dev/log it dies and podman run waits 20 s for it.
		"CONMON_TIMEOUTS 0\n",
		// The subordinate ids newuidmap would map, from the guest's /etc/subuid.
		"PAUSE sleep 0:1000:1 1:100000:65536 \n"} {
		if !strings.Contains(out, want) {
			t.Errorf("run 1: output lacks %q", want)
		}
	}
	out, _ = w.session(asUser(`podman images --format "IMAGE {{.Repository}}"; podman run --rm -v vol:/data localhost/bb cat /data/f`))
	if !strings.Contains(out, "IMAGE localhost/bb") || !strings.Contains(out, "kept") {
		t.Errorf("run 2 (second boot): %q; want localhost/bb still in podman images and the volume's data", out)
	}
}

// profileLines keeps the guest init's profile lines of stderr.
func profileLines(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "guest-init:") || strings.Contains(l, "ms") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
