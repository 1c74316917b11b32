package rootfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// hostileNames are path components that mean something in another
// program's option string: overlay's and fuse-overlayfs's -o (',' ':' '='
// '\'), a line-based format (a newline), a command line (a leading '-').
var hostileNames = []string{
	"a,lowerdir=/etc", "b:/etc", `c\,d`, "e=f", "g\nh", "-i",
}

// TestOverlayHostilePaths mounts a task root over a --rootfs directory
// whose path, and whose task directory's path (the state directory), hold
// each hostile name: the root shows the directory's files and nothing else
// (no /etc smuggled in as a layer), writes land in the task's upper
// directory, and the directory is unchanged.
func TestOverlayHostilePaths(t *testing.T) {
	testenv.RequireRoot(t)
	for _, backend := range []string{BackendOverlay, BackendFuseOverlay} {
		for _, name := range hostileNames {
			t.Run(backend+"/"+name, func(t *testing.T) {
				if backend == BackendFuseOverlay {
					testenv.RequireCommand(t, "fuse-overlayfs", "fuse-overlayfs")
				}
				base := filepath.Join(t.TempDir(), name)
				dir, taskDir := filepath.Join(base, "root"+name), filepath.Join(base, "state"+name, "task")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("lower\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				task, err := NewDirTask(dir, taskDir, backend, testLogger(t))
				if backend == BackendFuseOverlay && strings.Contains(name, ":") {
					// fuse-overlayfs splits real paths at ':': refused,
					// naming the path.
					if err == nil || !strings.Contains(err.Error(), "holds ':'") {
						t.Errorf("NewDirTask(%q, %s) = %v, want a refusal naming ':'", dir, backend, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("NewDirTask(%q, %s) = %v", dir, backend, err)
				}
				defer task.Remove()
				if got := dirNames(t, task.Root); !slices.Equal(got, []string{"keep"}) {
					t.Errorf("task root over %q = %q, want [keep]", dir, got)
				}
				if err := os.WriteFile(filepath.Join(task.Root, "new"), []byte("x"), 0o644); err != nil {
					t.Fatalf("write in the task root: %v", err)
				}
				if _, err := os.Stat(filepath.Join(taskDir, taskUpperDir, "new")); err != nil {
					t.Errorf("the task's write is not in its upper directory: %v", err)
				}
				if got := dirNames(t, dir); !slices.Equal(got, []string{"keep"}) {
					t.Errorf("--rootfs directory after the write = %q, want [keep]", got)
				}
				if err := task.Remove(); err != nil {
					t.Fatalf("Remove() = %v", err)
				}
				if _, err := os.Stat(taskDir); !os.IsNotExist(err) {
					t.Errorf("task directory after Remove: %v, want it gone", err)
				}
			})
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestOverlayLegacyRefuses: on kernels whose overlay takes no layer fds,
// the mount(2) data string is the fallback; a layer path it would misread
// is refused, naming the path, before anything is mounted.
func TestOverlayLegacyRefuses(t *testing.T) {
	for _, p := range []string{"/s/a,lowerdir=/etc", "/s/b:/etc", `/s/c\d`} {
		for _, l := range []overlayLayers{
			{lowers: []string{p}, upper: "/t/upper", work: "/t/work"},
			{lowers: []string{"/l"}, upper: p + "/upper", work: p + "/work"},
		} {
			err := mountOverlayLegacy(l, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), "cannot carry") {
				t.Errorf("mountOverlayLegacy(%+v) = %v, want a refusal naming the path", l, err)
			}
		}
	}
}

// TestOverlayLegacyMounts: the fallback still mounts plain paths.
func TestOverlayLegacyMounts(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	l := overlayLayers{lowers: []string{filepath.Join(dir, "lower")}, upper: filepath.Join(dir, "upper"), work: filepath.Join(dir, "work"), volatileSync: true}
	target := filepath.Join(dir, "root")
	for _, d := range []string{l.lowers[0], l.upper, l.work, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(l.lowers[0], "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := mountOverlayLegacy(l, target); err != nil {
		t.Fatalf("mountOverlayLegacy = %v", err)
	}
	defer unmountTaskRoot(target)
	if got := dirNames(t, target); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("legacy overlay root = %q, want [keep]", got)
	}
}
