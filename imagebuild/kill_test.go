package imagebuild

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers/buildah"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// killChildEnv makes the test binary a build that gets SIGKILLed in its
// RUN step: "storeRoot|base|seconds". It builds a recipe whose RUN leaves
// two busybox sleeps of that many seconds: the shell's child and
// grandchild, neither of which has a parent-death signal.
const killChildEnv = "LOFTD_IMAGEBUILD_TEST_KILL_CHILD"

func killChild() int {
	f := strings.Split(os.Getenv(killChildEnv), "|")
	store, err := rootfs.Open(rootfs.Options{Root: f[0]})
	if err == nil {
		recipe := fmt.Sprintf("FROM %s\nRUN busybox sleep %s & busybox sleep %s; echo done\n", f[1], f[2], f[2])
		_, err = Build(context.Background(), store, Options{Containerfile: []byte(recipe), Tag: "killed", Out: os.Stderr})
	}
	fmt.Fprintln(os.Stderr, "kill child: the build ended, it should have been killed:", err)
	return 3
}

// TestKilledBuild: a build SIGKILLed in a RUN step leaves no process of
// the step behind, and what it leaves in the store (working containers,
// their overlay mounts) is removed by the next build or by CleanStale
// (loftd gc), after which the store closes cleanly. Before, the step's
// sleeps ran on, and closing the store failed with "a layer is mounted".
func TestKilledBuild(t *testing.T) {
	testenv.RequireRoot(t)
	base := rootfstest.Build(t, rootfstest.Spec{Dir: filepath.Join(t.TempDir(), "layout")})
	for _, cleaner := range []string{"CleanStale", "next Build"} {
		t.Run(cleaner, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "images")
			secs := fmt.Sprint(100000 + rand.IntN(800000)) // names this test's sleeps among all processes
			killBuildInRun(t, root, base, secs)
			if pids := waitGone(sleepers(secs)); len(pids) > 0 {
				t.Errorf("the killed build's RUN step left processes %v running", pids)
				for _, p := range pids {
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
			store, err := rootfs.Open(rootfs.Options{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			if left := workingContainers(t, store); len(left) == 0 {
				t.Fatalf("the killed build left no working container: the test did not kill it mid-build")
			}
			switch cleaner {
			case "CleanStale":
				stale, err := CleanStale(store, nil)
				if err != nil || stale.Busy || len(stale.Removed) == 0 {
					t.Errorf("CleanStale = %+v, %v; want the dead build's containers removed", stale, err)
				}
			case "next Build":
				if _, err := Build(context.Background(), store, Options{Containerfile: []byte("FROM " + base + "\nRUN echo hi > /hello\n"), Tag: "next"}); err != nil {
					t.Fatalf("the next Build: %v", err)
				}
			}
			if left := workingContainers(t, store); len(left) > 0 {
				t.Errorf("after %s: working containers %v remain", cleaner, left)
			}
			if m := mountsUnder(t, root); len(m) > 0 {
				t.Errorf("after %s: mounts remain under the store: %q", cleaner, m)
			}
			if err := store.Close(); err != nil {
				t.Errorf("after %s: Close = %v, want nil", cleaner, err)
			}
		})
	}
}

// TestCleanStaleLeavesLiveBuild: while a build holds the build lock,
// CleanStale removes nothing, since a live build's containers look like a
// dead one's.
func TestCleanStaleLeavesLiveBuild(t *testing.T) {
	testenv.RequireRoot(t)
	store, err := rootfs.Open(rootfs.Options{Root: filepath.Join(t.TempDir(), "images")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lock, err := holdBuild(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stale, err := CleanStale(store, nil); err != nil || !stale.Busy {
		t.Errorf("CleanStale during a build = %+v, %v; want Busy", stale, err)
	}
	lock.Close()
	if stale, err := CleanStale(store, nil); err != nil || stale.Busy {
		t.Errorf("CleanStale after the build = %+v, %v; want not Busy", stale, err)
	}
}

// killBuildInRun starts the kill child, waits until its RUN step's sleeps
// run, SIGKILLs it and reaps it.
func killBuildInRun(t *testing.T, root, base, secs string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+strings.Join([]string{root, base, secs}, "|"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for len(sleepers(secs)()) < 2 {
		select {
		case err := <-exited:
			t.Fatalf("the build ended before its RUN step ran (%v):\n%s", err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// sleepers lists the pids of the busybox sleeps of secs seconds.
func sleepers(secs string) func() []int {
	want := []byte("sleep\x00" + secs + "\x00")
	return func() []int {
		var pids []int
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			if b, err := os.ReadFile(filepath.Join(d, "cmdline")); err == nil && bytes.Contains(b, want) {
				var pid int
				fmt.Sscan(filepath.Base(d), &pid)
				pids = append(pids, pid)
			}
		}
		return pids
	}
}

// waitGone gives the kernel's kills a moment to land: the parent-death
// signals travel down the chain one process at a time.
func waitGone(list func() []int) []int {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := list()
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func workingContainers(t *testing.T, store *rootfs.Store) []string {
	t.Helper()
	builders, err := buildah.OpenAllBuilders(store.Containers())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range builders {
		ids = append(ids, b.ContainerID)
	}
	return ids
}

// mountsUnder lists the mount points below root, except the private bind
// of the overlay driver's own directory onto itself.
func mountsUnder(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], root+"/") && f[4] != filepath.Join(root, "overlay") {
			out = append(out, f[4])
		}
	}
	return out
}
