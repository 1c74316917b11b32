package rootfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// killChildEnv makes the test binary act as a run that dies mid-task:
// "state|driver|ref|taskDir|backend".
const killChildEnv = "LOFTD_ROOTFS_TEST_KILL_CHILD"

// killChild makes a task root and SIGKILLs itself, leaving a snapshot or a
// mount behind the way a crashed loftd would.
func killChild() {
	f := strings.Split(os.Getenv(killChildEnv), "|")
	s, err := Open(Options{Root: filepath.Join(f[0], "images"), Driver: f[1]})
	if err == nil {
		var img *Image
		if img, err = s.Resolve(context.Background(), f[2], PullMissing, nil); err == nil {
			_, err = s.NewTask(context.Background(), img, f[3], f[4])
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		os.Exit(3)
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestRemoveTaskRootAfterKill(t *testing.T) {
	testenv.RequireRoot(t)
	ref := buildImage(t)
	for _, tc := range []struct {
		env     env
		backend string
	}{
		{env{"btrfs", "btrfs", true}, BackendBtrfsSnapshot},
		{env{"ext4", "overlay", false}, BackendOverlay},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			state := tc.env.stateDir(t)
			// The killed store never shut down: reopening and closing it
			// undoes the driver's own mounts.
			t.Cleanup(func() { openStore(t, state, tc.env.driver).Close() })
			taskDir := filepath.Join(state, "tasks", "killed")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), killChildEnv+"="+strings.Join([]string{state, tc.env.driver, ref, taskDir, tc.backend}, "|"))
			out, err := cmd.CombinedOutput()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("kill child: %v, want death by SIGKILL\n%s", err, out)
			}
			root := filepath.Join(taskDir, "rootfs")
			checkFiles(t, root, imageFiles[:2]) // the crashed task's root is really there
			switch tc.backend {
			case BackendBtrfsSnapshot:
				if !isSubvolume(root) {
					t.Fatalf("killed run left %s, want a subvolume", root)
				}
				// A read-only root must not stop the delete.
				if err := os.Chmod(root, 0o555); err != nil {
					t.Fatal(err)
				}
			case BackendOverlay:
				if !isMount(t, root) {
					t.Fatalf("killed run left %s, want a mount", root)
				}
			}
			if err := RemoveTaskRoot(taskDir); err != nil {
				t.Fatalf("RemoveTaskRoot(%s) = %v", taskDir, err)
			}
			if isMount(t, root) {
				t.Errorf("after RemoveTaskRoot, %s is still mounted", root)
			}
			if _, err := os.Stat(taskDir); !os.IsNotExist(err) {
				t.Errorf("after RemoveTaskRoot, Stat(%s) = %v, want not exist", taskDir, err)
			}
		})
	}
}
