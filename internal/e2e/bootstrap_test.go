package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// workspaceState is the state directory of the world's workspace.
func (w *world) workspaceState(t *testing.T) string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(w.state, "loftd", "workspaces", "*"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("workspace state directories: %v, %v; want one", dirs, err)
	}
	return dirs[0]
}

// TestBootstrap: the workspace's bootstrap script runs once, as the guest
// user, in the workspace, before the first workload; a failure is said
// and retried on the next boot; after a success it never runs again.
func TestBootstrap(t *testing.T) {
	w := newWorld(t)
	script := filepath.Join(w.workspace, "setup.sh")
	write := func(body string) {
		if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// It counts its runs in a file of the workspace, and fails while
	// the workspace has a "fail" file.
	write("echo run >> bootstrap-runs; id -u > bootstrap-uid; pwd > bootstrap-pwd\n" +
		"echo bootstrap-out; echo bootstrap-err >&2\n[ -e fail ] && exit 4\nexit 0\n")
	if err := os.WriteFile(filepath.Join(w.workspace, "fail"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(w.workspace, name))
		return string(b)
	}
	// Boot 1: the script fails; the workload still runs, the failure is said.
	status, stdout, stderr := w.run("", "--vmm", "qemu", "--bootstrap", "setup.sh", "--", "cat", "bootstrap-runs")
	if status != 0 || stdout != "run\n" {
		t.Fatalf("boot 1 = %d, stdout %q; want 0 and the script's one run before the workload\nstderr:\n%s", status, stdout, stderr)
	}
	if !strings.Contains(stderr, "failed with status 4") || !strings.Contains(stderr, "runs again on the next boot") {
		t.Errorf("boot 1: the failure is not said on stderr:\n%s", stderr)
	}
	if strings.Contains(stdout, "bootstrap-out") {
		t.Errorf("the script's output reached the workload's stdout: %q", stdout)
	}
	state := w.workspaceState(t)
	if log, _ := os.ReadFile(filepath.Join(state, "bootstrap.log")); string(log) != "bootstrap-out\nbootstrap-err\n" {
		t.Errorf("kept output = %q, want the script's stdout and stderr", log)
	}
	if got := read("bootstrap-uid"); got != "1000\n" {
		t.Errorf("the script ran as uid %q, want the guest user's 1000", got)
	}
	if got := read("bootstrap-pwd"); got != "/workspace\n" {
		t.Errorf("the script ran in %q, want /workspace", got)
	}
	// Boot 2: it runs again, and succeeds.
	if err := os.Remove(filepath.Join(w.workspace, "fail")); err != nil {
		t.Fatal(err)
	}
	if status, _, stderr := w.run("", "--vmm", "qemu", "--bootstrap", "setup.sh", "--", "true"); status != 0 || strings.Contains(stderr, "bootstrap") {
		t.Fatalf("boot 2 = %d; want 0 and no word of the bootstrap\nstderr:\n%s", status, stderr)
	}
	if got := read("bootstrap-runs"); got != "run\nrun\n" {
		t.Errorf("after a failed and a good run, the script ran %q, want twice", got)
	}
	// Boot 3, from the config file this time: done, it does not run.
	if err := os.MkdirAll(filepath.Join(w.state, "config", "loftd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.state, "config", "loftd", "loftd.toml"), []byte("[workspace]\nbootstrap = \"setup.sh\"\nhostname = \"agent-7\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr = w.run("", "--vmm", "qemu", "--", "hostname")
	if status != 0 || stdout != "agent-7\n" {
		t.Fatalf("boot 3 = %d, stdout %q; want 0 and [workspace] hostname\nstderr:\n%s", status, stdout, stderr)
	}
	if got := read("bootstrap-runs"); got != "run\nrun\n" {
		t.Errorf("the script ran again after it succeeded: %q", got)
	}
	if status, stdout, _ := w.run("", "--vmm", "qemu", "--hostname", "flag-host", "--", "hostname"); status != 0 || stdout != "flag-host\n" {
		t.Errorf("--hostname: %d, %q; want flag-host", status, stdout)
	}
}

// TestBootstrapRefusesLinks: a script in the workspace that is a link (the
// project's, not the user's choice) is never read: loftd would hand the
// guest whatever host file it names.
func TestBootstrapRefusesLinks(t *testing.T) {
	w := newWorld(t)
	if err := os.Symlink("/etc/shadow", filepath.Join(w.workspace, "setup.sh")); err != nil {
		t.Fatal(err)
	}
	status, _, stderr := w.run("", "--vmm", "qemu", "--bootstrap", "setup.sh", "--", "true")
	if status != 125 || !strings.Contains(stderr, "bootstrap script setup.sh") {
		t.Fatalf("a linked bootstrap script = %d; want 125 and an error naming it\nstderr:\n%s", status, stderr)
	}
}
