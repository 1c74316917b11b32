package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestSnapshotNix: a file installed in /nix after a save is gone after the
// restore, and what was there at the save is back; a restore while a VM
// uses the disk is refused naming the session. Every path: the state
// directory on a btrfs loop mount (a reflink of the disk file), on this
// machine's ext4 (auto: a btrfs snapshot inside the disk, made and
// restored by maintenance VMs) and there with --method file (a sparse copy).
func TestSnapshotNix(t *testing.T) {
	for _, tc := range []struct {
		name, flag, method string
		btrfs              bool
	}{
		{"reflink", "auto", "reflink", true},
		{"in-disk", "auto", "in-disk", false},
		{"sparse copy", "file", "sparse-copy", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if tc.btrfs {
				w.state = testenv.Btrfs(t)
			}
			run := func(script string) string {
				t.Helper()
				status, out, stderr := w.run("", "--vmm", "qemu", "--root", "--", "sh", "-c", script)
				if status != 0 {
					t.Fatalf("loftd --root -- sh -c %q = %d\n%s\n%s", script, status, out, stderr)
				}
				return out
			}
			run("echo saved > /nix/kept")
			status, out, errs := w.sub("snapshot", "save", "--target", "nix", "--method", tc.flag, "--vmm", "qemu", "--guest-init", bins.guestInit, "s1")
			if want := "saved nix snapshot s1 (" + tc.method + ")\n"; status != 0 || out != want {
				t.Fatalf("snapshot save = %d %q %s, want %q", status, out, errs, want)
			}
			run("echo later > /nix/installed-after")
			pid, wait := w.startLong("--vmm", "qemu")
			status, _, errs = w.sub("snapshot", "restore", "--target", "nix", "s1")
			if want := fmt.Sprintf("pid %d", pid); status == 0 || !strings.Contains(errs, want) {
				t.Errorf("snapshot restore while a session runs = %d %q, want a refusal naming %q", status, errs, want)
			}
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			wait()
			if status, out, errs = w.sub("snapshot", "restore", "--target", "nix", "--vmm", "qemu", "--guest-init", bins.guestInit, "s1"); status != 0 {
				t.Fatalf("snapshot restore = %d %q %s", status, out, errs)
			}
			if got := run("cat /nix/kept; test -e /nix/installed-after && echo still-there || echo gone"); got != "saved\ngone\n" {
				t.Errorf("/nix after restore: %q, want the saved file and the later one gone", got)
			}
			if _, out, _ = w.sub("snapshot", "list", "--target", "nix"); !strings.Contains(out, "s1") {
				t.Errorf("snapshot list = %q, want s1", out)
			}
			// A second save and restore, from the restored state.
			run("echo second > /nix/second")
			if status, out, errs = w.sub("snapshot", "save", "--target", "nix", "--method", tc.flag, "--vmm", "qemu", "--guest-init", bins.guestInit, "s2"); status != 0 {
				t.Fatalf("snapshot save s2 = %d %q %s", status, out, errs)
			}
			run("rm /nix/second /nix/kept")
			if status, out, errs = w.sub("snapshot", "restore", "--target", "nix", "--vmm", "qemu", "--guest-init", bins.guestInit, "s2"); status != 0 {
				t.Fatalf("snapshot restore s2 = %d %q %s", status, out, errs)
			}
			if got := run("cat /nix/kept /nix/second"); got != "saved\nsecond\n" {
				t.Errorf("/nix after the second restore: %q", got)
			}
			for _, s := range []string{"s1", "s2"} {
				if status, out, errs = w.sub("snapshot", "rm", "--target", "nix", "--vmm", "qemu", "--guest-init", bins.guestInit, s); status != 0 {
					t.Errorf("snapshot rm %s = %d %q %s", s, status, out, errs)
				}
			}
			if _, out, _ = w.sub("snapshot", "list", "--target", "nix"); strings.Contains(out, "s1") || strings.Contains(out, "s2") {
				t.Errorf("snapshot list after rm = %q", out)
			}
		})
	}
}

// TestSnapshotRootless: an in-disk snapshot saved and restored by the
// unprivileged user (the maintenance VMs run in the keep-id namespace).
func TestSnapshotRootless(t *testing.T) {
	w := newRootlessWorld(t)
	run := func(script string) string {
		t.Helper()
		c := w.cmd("--root", "--", "sh", "-c", script)
		var stderr strings.Builder
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			t.Fatalf("rootless loftd --root -- sh -c %q: %v\n%s", script, err, stderr.String())
		}
		return string(out)
	}
	run("echo saved > /nix/kept")
	if status, out, errs := w.sub("snapshot", "save", "--vmm", "qemu", "s1"); status != 0 || out != "saved nix snapshot s1 (in-disk)\n" {
		t.Fatalf("rootless snapshot save = %d %q %s", status, out, errs)
	}
	run("echo later > /nix/installed-after")
	if status, out, errs := w.sub("snapshot", "restore", "--vmm", "qemu", "s1"); status != 0 {
		t.Fatalf("rootless snapshot restore = %d %q %s", status, out, errs)
	}
	if got := run("cat /nix/kept; test -e /nix/installed-after && echo still-there || echo gone"); got != "saved\ngone\n" {
		t.Errorf("/nix after a rootless restore: %q", got)
	}
}
