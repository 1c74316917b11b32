package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loftd/loftd/rootfs/rootfstest"
	"github.com/moby/sys/mountinfo"
)

// TestStopSignalDuringSetup: SIGTERM or SIGINT while loftd is still
// setting up (creating the disks, ingesting the image into the task root)
// ends it with 128+n after its cleanup: no task directory, no mount of the
// task root, no process; and the next run works (issue 7, defect 5).
func TestStopSignalDuringSetup(t *testing.T) {
	newWorld(t) // the requirements, before the slow image build
	// An incompressible 256 MiB layer: ingesting it keeps loftd in the
	// rootfs phase for seconds after the task directory appears.
	ref := rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(t.TempDir(), "layout"), Tag: "big", Files: []rootfstest.File{
		{Path: "/big", Mode: 0o644, Size: 256 << 20},
	}})
	for _, tt := range []struct {
		name string
		sig  syscall.Signal
		// ready reports that loftd is inside the phase to interrupt.
		ready func(state string) bool
	}{
		{"disks/SIGINT", syscall.SIGINT, func(state string) bool { return globbed(filepath.Join(state, "loftd", "workspaces", "*")) }},
		{"rootfs/SIGTERM", syscall.SIGTERM, func(state string) bool { return globbed(filepath.Join(state, "loftd", "tasks", "*")) }},
		{"rootfs/SIGINT", syscall.SIGINT, func(state string) bool { return globbed(filepath.Join(state, "loftd", "tasks", "*")) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			c := w.cmd("--image", ref, "--profile", "--", "sh", "-c", "exit 0")
			logf, err := os.Create(filepath.Join(t.TempDir(), "loftd.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			c.Stdout, c.Stderr = logf, logf
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Process.Kill() })
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			log := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
			for !tt.ready(w.state) {
				select {
				case <-done:
					t.Fatalf("loftd ended before the phase to interrupt:\n%s", log())
				case <-time.After(10 * time.Millisecond):
				}
			}
			if err := c.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("loftd did not end within 2 minutes of %v:\n%s", tt.sig, log())
			}
			if strings.Contains(log(), "helper-start") {
				t.Fatalf("the VM started before %v arrived: the test interrupted no setup phase\n%s", tt.sig, log())
			}
			// An exit, not a death by the signal: a death skips the cleanup.
			if got, want := c.ProcessState.ExitCode(), 128+int(tt.sig); got != want {
				t.Errorf("loftd after %v during setup: %v, want exit status %d\n%s", tt.sig, c.ProcessState, want, log())
			}
			if tasks, _ := filepath.Glob(filepath.Join(w.state, "loftd", "tasks", "*")); len(tasks) != 0 {
				t.Errorf("task directories left after %v during setup: %v", tt.sig, tasks)
			}
			mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(w.state))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range mounts {
				t.Errorf("mount left after %v during setup: %s on %s", tt.sig, m.FSType, m.Mountpoint)
			}
			if left := w.waitNoLeftovers(); len(left) > 0 {
				t.Errorf("processes left after %v during setup:\n%s", tt.sig, strings.Join(left, "\n"))
			}
			if status, _, stderr := w.run("", "--image", ref, "--", "sh", "-c", "exit 0"); status != 0 {
				t.Errorf("the next run: status %d\n%s", status, stderr)
			}
		})
	}
}

func globbed(pattern string) bool {
	m, _ := filepath.Glob(pattern)
	return len(m) > 0
}
