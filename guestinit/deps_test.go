package guestinit

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

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
