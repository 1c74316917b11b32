package guestinit

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGuestInitDeps keeps the guest binary small and static: it must not
// link the host side (buildah, containers/*, purego, host, krun, rootfs).
func TestGuestInitDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/loftd/loftd/cmd/loftd-guest-init").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/containers/", "go.podman.io/", "github.com/ebitengine/purego",
		"github.com/loftd/loftd/host", "github.com/loftd/loftd/krun", "github.com/loftd/loftd/rootfs", "runtime/cgo"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("cmd/loftd-guest-init depends on %s (forbidden: %s)", dep, f)
			}
		}
	}
}

// TestGuestInitStatic builds the guest init as CI and loftd do and checks
// it has no dynamic loader: it runs in images without a libc.
func TestGuestInitStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "guest-init")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/loftd/loftd/cmd/loftd-guest-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("guest init %s has PT_INTERP: not static", bin)
		}
	}
}
