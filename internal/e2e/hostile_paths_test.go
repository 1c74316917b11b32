package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/rootfs/rootfstest"
)

// hostileNames are path components that mean something in another
// program's option string: ',' separates options (virtiofsd's -o, overlay's
// mount data, QEMU's -drive and -chardev), '=' gives one a value, ':'
// separates overlay's lower layers, '\' escapes, a newline ends a line, and
// a leading '-' starts a flag. Each would smuggle "/etc" in as a layer or a
// source if the path were spliced into the string.
var hostileNames = []struct{ label, name string }{
	{"comma", "a,source=/etc,lowerdir=/etc"},
	{"equals", "b=/etc"},
	{"colon", "c:/etc"},
	{"backslash", `d\,e`},
	{"newline", "f\ng"},
	{"dash", "-h"},
}

// hostilePathScript shows the root's marker, fails if any of /etc's files
// surfaced at the guest's / (an overlay layer or a share smuggled in), and
// writes to the workspace.
const hostilePathScript = "cat /marker && for f in passwd shadow group; do test ! -e /$f || exit 9; done && echo clean && echo out > /workspace/out"

const hostileWant = "hostile-marker\nclean\n"

// TestHostilePathsAsRoot runs loftd as root with a state directory and a
// --rootfs whose paths hold each hostile name: the run works, sees only
// its own root and writes its workspace.
func TestHostilePathsAsRoot(t *testing.T) {
	w0 := newWorld(t)
	for _, h := range hostileNames {
		t.Run(h.label, func(t *testing.T) {
			w := *w0
			w.t = t
			base := filepath.Join(t.TempDir(), h.name)
			w.state, w.root = filepath.Join(base, "state"+h.name), filepath.Join(base, "root"+h.name)
			if err := os.MkdirAll(w.state, 0o755); err != nil {
				t.Fatal(err)
			}
			copyRoot(t, w0.root, w.root)
			status, stdout, stderr := w.run("", "--vmm", "qemu", "--", "sh", "-c", hostilePathScript)
			checkHostileRun(t, w.state, w.root, w.workspace, status, stdout, stderr)
		})
	}
}

// TestHostileStateImage runs an image (not --rootfs) with the state
// directory, and so the image store and its layers, under each hostile
// name, as root and rootless: the store's layers become the task's overlay
// layers.
func TestHostileStateImage(t *testing.T) {
	w0 := newWorld(t)
	r := newRootless(t)
	layout := filepath.Join(r.base, "layout")
	ref := rootfstest.Build(t, rootfstest.Spec{Dir: layout, Tag: "v1", Files: []rootfstest.File{
		{Path: "/marker", Mode: 0o644, Content: []byte("hostile-marker\n")}}})
	r.readable(t, layout)
	script := "cat /marker && test ! -e /passwd && echo clean"
	for i, h := range hostileNames {
		t.Run(h.label+"/root", func(t *testing.T) {
			w := *w0
			w.t = t
			w.state = filepath.Join(t.TempDir(), h.name, "state"+h.name)
			if err := os.MkdirAll(w.state, 0o755); err != nil {
				t.Fatal(err)
			}
			status, stdout, stderr := w.run("", "--vmm", "qemu", "--image", ref, "--", "sh", "-c", script)
			checkHostileRun(t, w.state, ref, "", status, stdout, stderr)
		})
		t.Run(h.label+"/rootless", func(t *testing.T) {
			home := filepath.Join(r.base, fmt.Sprintf("img%d", i), h.name, "home"+h.name)
			if err := os.MkdirAll(home, 0o700); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("chmod", "-R", "a+rX", filepath.Join(r.base, fmt.Sprintf("img%d", i))).CombinedOutput(); err != nil {
				t.Fatalf("chmod: %v %s", err, out)
			}
			r.chownTree(t, home)
			r.home = home
			status, stdout, stderr := r.run(t, "--image", ref, "--", "sh", "-c", script)
			checkHostileRun(t, filepath.Join(home, ".local", "state"), ref, "", status, stdout, stderr)
		})
	}
}

// TestHostilePathsRootless is TestHostilePathsAsRoot as an unprivileged
// user, whose home (and so state directory, ~/.local/state/loftd) and
// --rootfs hold the hostile names.
func TestHostilePathsRootless(t *testing.T) {
	w0 := newWorld(t)
	r := newRootless(t)
	for i, h := range hostileNames {
		t.Run(h.label, func(t *testing.T) {
			base := filepath.Join(r.base, "hostile"+string(rune('0'+i)), h.name)
			home, root := filepath.Join(base, "home"+h.name), filepath.Join(base, "root"+h.name)
			if err := os.MkdirAll(home, 0o700); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("chmod", "-R", "a+rX", filepath.Join(r.base, "hostile"+string(rune('0'+i)))).CombinedOutput(); err != nil {
				t.Fatalf("chmod: %v %s", err, out)
			}
			copyRoot(t, w0.root, root)
			r.chownTree(t, home)
			r.chownTree(t, root)
			r.home = home
			status, stdout, stderr := r.run(t, "--rootfs", root, "--", "sh", "-c", hostilePathScript)
			checkHostileRun(t, filepath.Join(home, ".local", "state"), root, "", status, stdout, stderr)
		})
	}
}

// copyRoot copies the busybox root src to dst, with a marker file.
func copyRoot(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dst, "marker"), []byte("hostile-marker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkHostileRun wants the run to have worked (a refusal would have to
// name the path, but none is expected on this kernel), its workspace write
// to have landed when ws is given, and no mount left under the state dir.
func checkHostileRun(t *testing.T, state, root, ws string, status int, stdout, stderr string) {
	t.Helper()
	if status != 0 || stdout != hostileWant {
		t.Fatalf("loftd (state %q, root %q) -- sh -c %q = %d, %q; want 0, %q\nstderr:\n%s", state, root, hostilePathScript, status, stdout, hostileWant, stderr)
	}
	if ws != "" {
		if got, err := os.ReadFile(filepath.Join(ws, "out")); err != nil || string(got) != "out\n" {
			t.Errorf("workspace out = %q, %v; want \"out\\n\"", got, err)
		}
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), root) {
		t.Errorf("a mount over %q is left after the run", root)
	}
}
