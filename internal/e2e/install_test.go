package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// TestInstallFindsParts installs loftd with `make install DESTDIR=… PREFIX=/usr`
// and runs the installed binary with a clean environment (no LOFTD_*
// variable, HOME and XDG directories empty): doctor finds the guest init
// and libkrunfw in the install tree and QEMU's parts on the system, and a
// VM boots from the install tree.
func TestInstallFindsParts(t *testing.T) {
	testenv.RequireRoot(t)
	vm := testenv.RequireVM(t)
	makeBin := testenv.RequireCommand(t, "make", "make")
	dest := t.TempDir()
	empty := t.TempDir()
	cmd := exec.Command(makeBin, "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/usr",
		"KRUNFW="+filepath.Join(empty, "no-krunfw"), "XDG_DATA_HOME="+filepath.Join(empty, "no-xdg"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	prefix := filepath.Join(dest, "usr")
	for _, f := range []string{"bin/loftd", "bin/agentbox", "libexec/loftd/loftd-guest-init",
		"share/bash-completion/completions/loftd", "share/bash-completion/completions/agentbox",
		"share/zsh/site-functions/_loftd", "share/fish/vendor_completions.d/loftd.fish",
		"share/loftd/images/default/Containerfile"} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			t.Errorf("make install did not install %s: %v", f, err)
		}
	}
	// libkrunfw is installed only when fetched; CI has it in
	// $LOFTD_LIBKRUNFW_LIBRARY: copy it where make install puts it.
	fw := regexp.MustCompile(`^libkrunfw\.so\.[0-9]+`).FindString(filepath.Base(vm.Krunfw))
	if fw == "" {
		t.Fatalf("%s is not a libkrunfw.so.N", vm.Krunfw)
	}
	data, err := os.ReadFile(vm.Krunfw)
	if err != nil {
		t.Fatal(err)
	}
	libdir := filepath.Join(prefix, "lib", "loftd")
	if err := os.MkdirAll(libdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(libdir, fw), data, 0o644); err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	clean := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"), "XDG_STATE_HOME=" + filepath.Join(home, "state"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config")}
	loftd := filepath.Join(prefix, "bin", "loftd")
	doctor := exec.Command(loftd, "doctor")
	doctor.Env = clean
	var out, errb bytes.Buffer
	doctor.Stdout, doctor.Stderr = &out, &errb
	if err := doctor.Run(); err != nil {
		t.Fatalf("installed loftd doctor: %v\n%s%s", err, out.String(), errb.String())
	}
	wants := []string{
		filepath.Join(prefix, "libexec/loftd/loftd-guest-init") + " (next to the executable)",
		filepath.Join(libdir, fw) + " (next to the executable)",
		vm.Virtiofsd + " (system)",
		"backend: ",
	}
	// The passt scripts/fetch-passt built (make deps, as root) is
	// installed beside loftd.
	if _, err := os.Stat("/usr/local/libexec/loftd/passt"); err == nil {
		wants = append(wants, filepath.Join(prefix, "libexec/loftd/passt")+" (next to the executable)")
	}
	for _, want := range wants {
		if !strings.Contains(out.String(), want) {
			t.Errorf("installed loftd doctor does not report %q:\n%s", want, out.String())
		}
	}

	workspace, root := t.TempDir(), testenv.BusyboxRoot(t)
	run := exec.Command(loftd, "--workspace", workspace, "--rootfs", root, "--mem", "1", "--cpus", "1", "--", "true")
	run.Env = clean
	if b, err := run.CombinedOutput(); err != nil {
		t.Errorf("installed loftd -- true with no LOFTD_* variable: %v\n%s", err, b)
	}
}
