package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestDefaultImage is the new user's path on a machine without a registry:
// a run with no image names the command that builds one; the offline base
// (scripts/make-base) is imported, the default image is built from it with
// Buildah's library, a rebuild is a cache hit, and a run with no --image
// boots it with its userland.
func TestDefaultImage(t *testing.T) {
	w := newWorld(t)
	base := debianBase(t)
	run := func(args ...string) (int, string, string) {
		t.Helper()
		c := w.cmd()
		// No --rootfs and no --image: the default resolution is under test.
		c.Args = append([]string{bins.loftd}, args...)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil && c.ProcessState == nil {
			t.Fatalf("loftd %q: %v", args, err)
		}
		return c.ProcessState.ExitCode(), out.String(), errb.String()
	}
	session := []string{"--vmm", "qemu", "--workspace", w.workspace, "--mem", "1", "--cpus", "1", "--guest-init", bins.guestInit, "--"}

	status, _, stderr := run(append(session, "true")...)
	if status == 0 || !strings.Contains(stderr, "loftd image build") || !strings.Contains(stderr, "loftd image import") {
		t.Fatalf("run with no image built = %d, stderr %q; want a failure naming `loftd image build` and the offline import", status, stderr)
	}

	if status, _, stderr := run("image", "import", base); status != 0 {
		t.Fatalf("loftd image import %s = %d\n%s", base, status, stderr)
	}
	build := []string{"image", "build", "--base", "localhost/debian-base:bookworm"}
	status, id, stderr := run(build...)
	if status != 0 || id == "" {
		t.Fatalf("loftd %q = %d, stdout %q\n%s", build, status, id, stderr)
	}
	status, again, stderr := run(build...)
	if status != 0 || again != id || !strings.Contains(stderr, "Using cache") {
		t.Errorf("second loftd %q = %d, image %q; want the cached image %q\n%s", build, status, again, id, stderr)
	}
	if status, out, stderr := run("images"); status != 0 || !strings.Contains(out, "localhost/loftd:latest") {
		t.Errorf("loftd images = %d, %q; want localhost/loftd:latest listed\n%s", status, out, stderr)
	}

	script := "python3 --version; git --version; podman --version; nix --version; gcc --version | head -1; curl --version | head -1; id -u; echo LANG=$LANG"
	status, out, stderr := run(append(session, "sh", "-c", script)...)
	if status != 0 {
		t.Fatalf("loftd -- sh -c %q with the default image = %d\nstdout:\n%s\nstderr:\n%s", script, status, out, stderr)
	}
	for _, want := range []string{"Python 3.11", "git version 2.", "podman version 4.", "nix (Nix) 2.", "gcc (Debian", "curl 7.", "LANG=C.UTF-8"} {
		if !strings.Contains(out, want) {
			t.Errorf("default image userland: output lacks %q:\n%s", want, out)
		}
	}

	// The README's first command: scripts/demo (what `make demo` runs after
	// the build) on the image just built: a cache hit, then the one-shot.
	demo := exec.Command("../../scripts/demo", bins.loftd)
	demo.Env = w.cmd().Env
	var dout, derr bytes.Buffer
	demo.Stdout, demo.Stderr = &dout, &derr
	if err := demo.Run(); err != nil {
		t.Fatalf("scripts/demo: %v\nstdout:\n%s\nstderr:\n%s", err, dout.String(), derr.String())
	}
	for _, want := range []string{"hello from a microVM", "uid=1000", "Python 3.11", "git version 2.", "agentbox"} {
		if !strings.Contains(dout.String()+derr.String(), want) {
			t.Errorf("scripts/demo output lacks %q:\nstdout:\n%s\nstderr:\n%s", want, dout.String(), derr.String())
		}
	}
}

// debianBase returns scripts/make-base's tar, made once and kept in the
// module's .cache under a name keyed by the script's content, so repeated
// runs on one machine skip mmdebstrap (1–4 minutes).
func debianBase(t testing.TB) string {
	t.Helper()
	testenv.RequireCommand(t, "mmdebstrap", "mmdebstrap")
	script, err := filepath.Abs("../../scripts/make-base")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	cache, err := filepath.Abs("../../.cache")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(cache, "debian-base-"+hex.EncodeToString(sum[:6])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(script, out).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, out, err, b)
	}
	return out
}
