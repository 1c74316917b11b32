package rootfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/rootfs/rootfstest"
)

// BenchmarkNewTask times task root materialization (NewTask alone; Remove
// runs with the timer stopped) for a small and a large image with each
// backend. A ratio near 1 between the sizes shows the cost is O(1).
func BenchmarkNewTask(b *testing.B) {
	testenv.RequireRoot(b)
	for _, size := range []struct {
		name  string
		bytes int64
	}{{"10MiB", 10 << 20}, {"1GiB", 1 << 30}} {
		ref := rootfstest.Build(b, rootfstest.Spec{
			Dir:        filepath.Join(b.TempDir(), "layout"),
			NoDefaults: true,
			Files: []rootfstest.File{
				{Path: "/etc/hostname", Mode: 0o644, Content: []byte("bench\n")},
				{Path: "/blob", Mode: 0o644, Size: size.bytes},
			},
		})
		stores := map[string]*Store{}
		outer := b // stores outlive one sub-benchmark
		for _, backend := range []string{BackendBtrfsSnapshot, BackendOverlay, BackendFuseOverlay} {
			b.Run(size.name+"/"+backend, func(b *testing.B) {
				driver, state := DriverOverlay, ""
				if backend == BackendBtrfsSnapshot {
					driver = DriverBtrfs
				}
				if backend == BackendFuseOverlay {
					testenv.RequireCommand(b, "fuse-overlayfs", "fuse-overlayfs")
				}
				s := stores[driver]
				if s == nil {
					if driver == DriverBtrfs {
						state = btrfsState(outer, 2*size.bytes+(1<<30))
					} else {
						state = outer.TempDir()
					}
					s = openStore(outer, state, driver)
					stores[driver] = s
				}
				img, err := s.Resolve(context.Background(), ref, PullMissing, nil)
				if err != nil {
					b.Fatalf("Resolve(%q) = %v", ref, err)
				}
				taskBase := filepath.Join(filepath.Dir(s.Root()), "tasks")
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					task, err := s.NewTask(context.Background(), img, filepath.Join(taskBase, fmt.Sprint(i)), backend)
					if err != nil {
						b.Fatalf("NewTask(%s) = %v", backend, err)
					}
					b.StopTimer()
					if err := task.Remove(); err != nil {
						b.Fatalf("Remove() = %v", err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkStartup compares the cache-hit start-up of a task (Open + Resolve
// hit + NewTask) with Debian's buildah CLI doing the same job (`buildah
// from` + `buildah mount`) on the same image, each with its own store.
func BenchmarkStartup(b *testing.B) {
	testenv.RequireRoot(b)
	// Debian's buildah names an oci: image after its path, which must then
	// be lowercase: b.TempDir() is not.
	dir, err := os.MkdirTemp("", "loftd-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	ref := rootfstest.Build(b, rootfstest.Spec{Dir: filepath.Join(dir, "layout")})
	for _, driver := range []string{DriverOverlay, DriverBtrfs} {
		b.Run("loftd/"+driver, func(b *testing.B) {
			state := b.TempDir()
			if driver == DriverBtrfs {
				state = testenv.Btrfs(b)
			}
			root := filepath.Join(state, "images")
			s := openStore(b, state, driver)
			if _, err := s.Resolve(context.Background(), ref, PullMissing, nil); err != nil {
				b.Fatalf("Resolve(%q) = %v", ref, err)
			}
			s.Close()
			for i := 0; b.Loop(); i++ {
				s, err := Open(Options{Root: root, Driver: driver})
				if err != nil {
					b.Fatal(err)
				}
				img, err := s.Resolve(context.Background(), ref, PullMissing, nil)
				if err != nil || !img.CacheHit {
					b.Fatalf("Resolve(%q) = %+v, %v, want a cache hit", ref, img, err)
				}
				task, err := s.NewTask(context.Background(), img, filepath.Join(state, "tasks", fmt.Sprint(i)), BackendAuto)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := task.Remove(); err != nil {
					b.Fatal(err)
				}
				s.Close()
				b.StartTimer()
			}
		})
	}
	b.Run("buildah-cli/overlay", func(b *testing.B) {
		buildah := testenv.RequireCommand(b, "buildah", "buildah")
		state := b.TempDir()
		policy := filepath.Join(state, "policy.json")
		if err := os.WriteFile(policy, defaultPolicy, 0o644); err != nil {
			b.Fatal(err)
		}
		run := func(args ...string) string {
			all := append([]string{"--root", filepath.Join(state, "root"), "--runroot", filepath.Join(state, "run"), "--storage-driver", "overlay"}, args...)
			cmd := exec.Command(buildah, all...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("buildah %s: %v: %s", strings.Join(args, " "), err, stderr.String())
			}
			return strings.TrimSpace(string(out))
		}
		lines := strings.Split(run("pull", "--signature-policy", policy, "--quiet", ref), "\n")
		id := lines[len(lines)-1]
		for b.Loop() {
			ctr := run("from", "--pull=never", "--signature-policy", policy, "--quiet", id)
			mnt := run("mount", ctr)
			b.StopTimer()
			if _, err := os.Stat(filepath.Join(mnt, rootfstest.Busybox)); err != nil {
				b.Fatalf("buildah mount %s: %v", ctr, err)
			}
			run("rm", ctr)
			b.StartTimer()
		}
	})
}
