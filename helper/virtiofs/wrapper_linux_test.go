package virtiofs

import (
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestCommand starts a shell in virtiofsd's place through the wrapper with
// root's share id map: it runs as its namespace's root under that map,
// with no supplementary group, no_new_privs and the filter, and without
// the fd it was exec'd from.
func TestCommand(t *testing.T) {
	testenv.RequireRoot(t)
	ids, err := ShareIDs(Owner{GuestUID: 1000, GuestGID: 1000}, DefaultRange, DefaultRange)
	if err != nil {
		t.Fatal(err)
	}
	script := "cat /proc/self/uid_map; id -u; grep -E '^(Groups|NoNewPrivs|Seccomp):' /proc/self/status; echo fds:; readlink /proc/self/fd/*; true"
	cmd, done, err := Command(ids, "/bin/sh", nil, "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	done()
	if err != nil {
		t.Fatalf("wrapper: %v\n%s", err, out)
	}
	state, fds, _ := strings.Cut(string(out), "fds:")
	want := strings.Fields(`0 1879048192 1000 1000 0 1 1001 1879049193 64535 0 Groups: NoNewPrivs: 1 Seccomp: 2`)
	if got := strings.Fields(state); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("through the wrapper:\n%s\nwant (fields) %q", out, want)
	}
	// The shell was exec'd from an O_PATH fd on /bin/sh: it must be gone.
	for _, l := range strings.Fields(fds) {
		if strings.HasSuffix(l, "sh") || strings.HasSuffix(l, "dash") {
			t.Errorf("the exec'd program still holds the fd it was exec'd from (%s):\n%s", l, out)
		}
	}
}
