// Package testenv gives tests the real parts they need (root, a loop-mounted
// btrfs, a VM backend) and decides what happens when one is missing: the test
// skips with the reason, except when LOFTD_TEST_REQUIRE_ALL=1 (CI), where a
// missing part fails the test, so nothing that matters silently skips in CI.
//
// Under `go test -short` (make unit) RequireRoot, and with it Btrfs, Loop,
// RequireVM and RootlessUser, and RequireLibkrun skip even where the part
// is there: the unit run needs neither root nor a VM and stays fast.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireAllEnv, set to 1, turns every skip of this package into a failure.
const RequireAllEnv = "LOFTD_TEST_REQUIRE_ALL"

// Missing skips t with reason, or fails it when LOFTD_TEST_REQUIRE_ALL=1.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatalf("required by %s=1 but missing: %s", RequireAllEnv, reason)
	}
	t.Skip("skipping: " + reason)
}

// RequireRoot skips (or fails, in CI) unless the test runs as root. Under
// -short (make unit) it skips even as root: the unit run is the one that
// needs neither root nor a VM, and every VM and btrfs test asks for root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		Missing(t, "needs root; -short (make unit) runs no root tests")
	}
	if os.Geteuid() != 0 {
		Missing(t, "needs root (euid %d)", os.Geteuid())
	}
}

// RequireCommand returns the path of name, or skips (fails in CI) with the
// Debian package that provides it.
func RequireCommand(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not found (apt-get install %s)", name, debianPackage)
	}
	return p
}

// Btrfs returns the mount point of a fresh btrfs filesystem: a sparse file
// under t.TempDir(), formatted with mkfs.btrfs, loop-mounted with
// user_subvol_rm_allowed and unmounted when the test ends.
func Btrfs(t testing.TB) string {
	t.Helper()
	return BtrfsOfSize(t, 1<<30)
}

// BtrfsOfSize is Btrfs with an image of size bytes (apparent; sparse).
func BtrfsOfSize(t testing.TB, size int64) string {
	t.Helper()
	RequireRoot(t)
	mkfs := RequireCommand(t, "mkfs.btrfs", "btrfs-progs")
	img := filepath.Join(t.TempDir(), "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	// Btrfs: 1 GiB apparent, above mkfs.btrfs's minimum, sparse on disk.
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command(mkfs, "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs %s: %v\n%s", img, err, out)
	}
	return mountImage(t, img, "user_subvol_rm_allowed")
}

// Loop loop-mounts the btrfs image img under t.TempDir() and unmounts it
// when the test ends.
func Loop(t testing.TB, img string) string {
	t.Helper()
	RequireRoot(t)
	return mountImage(t, img, "")
}

func mountImage(t testing.TB, img, data string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := loopMount(img, mnt, "btrfs", data); err != nil {
		if errors.Is(err, unix.ENODEV) {
			Missing(t, "kernel without btrfs: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt
}

// VM is what a QEMU-backed VM test needs: the QEMU binary, a virtiofsd and
// the libkrunfw library whose kernel the guest boots.
type VM struct {
	QEMU, Virtiofsd, Krunfw string
}

// virtiofsdPaths are where scripts/fetch-virtiofsd (the Rust virtiofsd),
// newer distributions (the Rust virtiofsd package) and Debian 12 (QEMU's C
// virtiofsd) install virtiofsd, the Rust ones first.
var virtiofsdPaths = []string{"/usr/local/libexec/loftd/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd", "/usr/lib/qemu/virtiofsd"}

// CVirtiofsd is QEMU's C virtiofsd as Debian 12 ships it.
const CVirtiofsd = "/usr/lib/qemu/virtiofsd"

// RequireRustVirtiofsd returns the Rust virtiofsd scripts/fetch-virtiofsd
// installs (or the distribution's), or skips (fails in CI).
func RequireRustVirtiofsd(t testing.TB) string {
	t.Helper()
	for _, p := range virtiofsdPaths {
		if p == CVirtiofsd || !fileExists(p) {
			continue
		}
		if out, _ := exec.Command(p, "--help").CombinedOutput(); strings.Contains(string(out), "--shared-dir") {
			return p
		}
	}
	Missing(t, "no Rust virtiofsd in %v (run scripts/fetch-virtiofsd)", virtiofsdPaths)
	return ""
}

// RequireCVirtiofsd returns QEMU's C virtiofsd, or skips (fails in CI).
func RequireCVirtiofsd(t testing.TB) string {
	t.Helper()
	if !fileExists(CVirtiofsd) {
		Missing(t, "no C virtiofsd at %s (apt-get install qemu-system-common)", CVirtiofsd)
	}
	return CVirtiofsd
}

// RequireVM returns the parts of a QEMU VM, or skips (fails in CI) naming
// the package or script that provides the missing one. It needs root:
// virtiofsd's namespace sandbox and the test rootfs ownership want it.
func RequireVM(t testing.TB) VM {
	t.Helper()
	RequireRoot(t)
	var vm VM
	vm.QEMU = RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	for _, p := range virtiofsdPaths {
		if _, err := os.Stat(p); err == nil {
			vm.Virtiofsd = p
			break
		}
	}
	if vm.Virtiofsd == "" {
		if p, err := exec.LookPath("virtiofsd"); err == nil {
			vm.Virtiofsd = p
		} else {
			Missing(t, "virtiofsd not found in %v or $PATH (apt-get install qemu-system-common, or virtiofsd)", virtiofsdPaths)
		}
	}
	vm.Krunfw = RequireKrunfw(t)
	return vm
}

// KrunfwEnv names the libkrunfw to use, as the libkrun/krunfw package reads it.
const KrunfwEnv = "LOFTD_LIBKRUNFW_LIBRARY"

// RequireKrunfw returns the path of a libkrunfw.so.N: $LOFTD_LIBKRUNFW_LIBRARY,
// else the copy scripts/fetch-libkrunfw unpacked under the module's
// .cache/libkrunfw, else a system one. It skips (fails in CI) otherwise.
func RequireKrunfw(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(KrunfwEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", KrunfwEnv, p, err)
		}
		return p
	}
	var dirs []string
	if root := moduleRoot(); root != "" {
		dirs = append(dirs, filepath.Join(root, ".cache/libkrunfw/usr/lib/x86_64-linux-gnu"))
	}
	dirs = append(dirs, "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib")
	for _, d := range dirs {
		for _, name := range []string{"libkrunfw.so.5", "libkrunfw.so.4"} {
			if p := filepath.Join(d, name); fileExists(p) {
				return p
			}
		}
	}
	Missing(t, "libkrunfw not found (run scripts/fetch-libkrunfw .cache/libkrunfw, or set %s)", KrunfwEnv)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// moduleRoot is the directory holding go.mod, found upwards from the test's
// working directory (its package directory), or "".
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// RootlessUserName is the unprivileged user tests run loftd as.
const RootlessUserName = "loftd-rootless"

// RootlessUser returns the unprivileged test user, creating it (with
// subordinate ids) the first time: CI machines are fresh, developer
// machines keep it. Needs root.
func RootlessUser(t testing.TB) *user.User {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "useradd", "passwd")
	RequireCommand(t, "newuidmap", "uidmap")
	if _, err := user.Lookup(RootlessUserName); err != nil {
		if out, err := exec.Command("useradd", "-m", "-U", "-s", "/bin/sh", RootlessUserName).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", RootlessUserName, err, out)
		}
	}
	u, err := user.Lookup(RootlessUserName)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ file, flag string }{{"/etc/subuid", "--add-subuids"}, {"/etc/subgid", "--add-subgids"}} {
		b, _ := os.ReadFile(f.file)
		if strings.Contains("\n"+string(b), "\n"+RootlessUserName+":") {
			continue
		}
		if out, err := exec.Command("usermod", f.flag, "300000-365535", RootlessUserName).CombinedOutput(); err != nil {
			t.Fatalf("usermod %s %s: %v\n%s", f.flag, RootlessUserName, err, out)
		}
	}
	return u
}

// LibkrunEnv names the libkrun to use, as the krun package reads it.
const LibkrunEnv = "LOFTD_LIBKRUN_LIBRARY"

// RequireLibkrun returns the path of a real libkrun.so.1:
// $LOFTD_LIBKRUN_LIBRARY, else where scripts/fetch-libkrun installs it
// (/usr/local/lib/loftd as root, $XDG_DATA_HOME/loftd/lib otherwise),
// else /usr/lib/loftd. It skips (fails in CI) otherwise: `make deps`
// builds libkrun from the crate registry. Under -short it skips: loading
// and probing the real library is slow, and make unit wants none of it.
func RequireLibkrun(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		Missing(t, "needs a real libkrun; -short (make unit) loads none")
	}
	if p := os.Getenv(LibkrunEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", LibkrunEnv, p, err)
		}
		return p
	}
	dirs := []string{"/usr/local/lib/loftd", "/usr/lib/loftd"}
	if home, err := os.UserHomeDir(); err == nil {
		data := os.Getenv("XDG_DATA_HOME")
		if data == "" {
			data = filepath.Join(home, ".local/share")
		}
		dirs = append(dirs, filepath.Join(data, "loftd/lib"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "libkrun.so.1"); fileExists(p) {
			return p
		}
	}
	Missing(t, "no real libkrun in %v (run scripts/fetch-libkrun, or set %s)", dirs, LibkrunEnv)
	return ""
}
