package testenv

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Busybox returns the path of a static busybox, or skips (fails in CI): the
// test roots have no libc, so a dynamic one would not run in them.
func Busybox(t testing.TB) string {
	t.Helper()
	bb := RequireCommand(t, "busybox", "busybox-static")
	if !isStatic(bb) {
		Missing(t, "%s is not static: the test roots have no libc (apt-get install busybox-static)", bb)
	}
	return bb
}

func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// busyboxDirs are the directories of a busybox root: the mount points the
// guest init and loftd use, and /workspace for the project share.
var busyboxDirs = []string{"bin", "etc", "tmp", "proc", "sys", "dev", "run", "workspace"}

// WriteBusyboxRoot makes root a root filesystem of busybox (a static one,
// see Busybox) and a symlink for each of its applets. It takes no t so that
// a root shared by a whole test binary can be made once, outside any test.
func WriteBusyboxRoot(busybox, root string) error {
	for _, d := range busyboxDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("busybox root: %w", err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("busybox root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return fmt.Errorf("busybox root: %w", err)
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox root: %s --list: %w", busybox, err)
	}
	for _, app := range strings.Fields(string(out)) {
		if app == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", app)); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("busybox root: %w", err)
		}
	}
	return nil
}

// BusyboxRoot returns a fresh busybox root (WriteBusyboxRoot) under
// t.TempDir().
func BusyboxRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	if err := WriteBusyboxRoot(Busybox(t), root); err != nil {
		t.Fatal(err)
	}
	return root
}

// BusyboxTar returns a tar archive of a busybox root (BusyboxRoot), the
// shape of root tar scripts/make-base makes from Debian.
func BusyboxTar(t testing.TB) string {
	t.Helper()
	root := BusyboxRoot(t)
	name := filepath.Join(t.TempDir(), "root.tar")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	// os.DirFS is a ReadLinkFS: AddFS keeps the applets as symlinks.
	if err := tw.AddFS(os.DirFS(root)); err != nil {
		t.Fatalf("tar %s: %v", root, err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return name
}

// BuildGuestInit builds cmd/loftd-guest-init as the guest runs it (static:
// CGO_ENABLED=0) into out. It takes no t so that TestMain can build it once.
func BuildGuestInit(out string) error {
	root := moduleRoot()
	if root == "" {
		return errors.New("build guest init: no go.mod above the working directory")
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/loftd-guest-init")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build guest init: %v\n%s", err, b)
	}
	return nil
}
