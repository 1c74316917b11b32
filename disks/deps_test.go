package disks

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// The guest init links this package, so it must stay free of the host's
// heavy dependencies and of cgo-only code.
func TestImports(t *testing.T) {
	goBin := testenv.RequireCommand(t, "go", "golang-go")
	out, err := exec.Command(goBin, "list", "-deps", "github.com/loftd/loftd/disks").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/loftd/loftd/host", "github.com/loftd/loftd/rootfs", "github.com/loftd/loftd/krun",
		"github.com/loftd/loftd/guestinit", "github.com/containers/", "github.com/ebitengine/purego",
		"runtime/cgo",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("disks depends on %s; it must not (the guest init imports it)", dep)
			}
		}
	}
}
