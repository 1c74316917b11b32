package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/loftd/loftd/internal/parts"
)

// VirtiofsdPaths are where distributions install virtiofsd outside $PATH:
// Debian 12 ships QEMU's C one in /usr/lib/qemu; newer ones ship the Rust
// virtiofsd package in /usr/libexec.
var VirtiofsdPaths = []string{"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd"}

// FindQEMU returns path when set, else qemu-system-x86_64 from $PATH.
func FindQEMU(path string) (string, error) {
	if path == "" {
		path = "qemu-system-x86_64"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("find qemu: %w (install qemu-system-x86)", err)
	}
	return p, nil
}

// VirtiofsdPart is where virtiofsd is looked for, in internal/parts'
// order: ../libexec/loftd next to the executable, then $PATH and
// VirtiofsdPaths, then $XDG_DATA_HOME/loftd/libexec.
var VirtiofsdPart = parts.Part{
	Name: "virtiofsd", Files: []string{"virtiofsd"},
	Beside:  []string{"../libexec/loftd"},
	System:  systemVirtiofsd,
	DataDir: "libexec",
	Hint:    "install qemu-system-common on Debian 12, the virtiofsd package elsewhere",
}

// systemVirtiofsd is virtiofsd in $PATH, else the first of VirtiofsdPaths.
func systemVirtiofsd(name string) (string, bool) {
	if p, ok := parts.InPath()(name); ok {
		return p, true
	}
	for _, p := range VirtiofsdPaths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// FindVirtiofsd returns path when set (looked up in $PATH), else
// LocateVirtiofsd's.
func FindVirtiofsd(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	f, err := LocateVirtiofsd()
	return f.Path, err
}

// LocateVirtiofsd finds virtiofsd and the rule that found it.
func LocateVirtiofsd() (parts.Found, error) { return parts.Find(VirtiofsdPart, "") }

var flavors sync.Map // virtiofsd path → bool (true = Rust)

// IsRustVirtiofsd tells the Rust virtiofsd (--shared-dir DIR) from QEMU's C
// one (-o source=DIR) by its --help text.
func IsRustVirtiofsd(path string) bool {
	if v, ok := flavors.Load(path); ok {
		return v.(bool)
	}
	out, _ := exec.Command(path, "--help").CombinedOutput()
	rust := strings.Contains(string(out), "--shared-dir")
	flavors.Store(path, rust)
	return rust
}

// Report is what Probe found, for doctor.
type Report struct {
	QEMU, Virtiofsd    string
	VirtiofsdWhy       string // the rule that found it (internal/parts)
	Accel, AccelReason string
}

// Probe finds the binaries the backend needs and picks the accelerator.
func Probe() (Report, error) {
	var r Report
	var err error
	if r.QEMU, err = FindQEMU(""); err != nil {
		return r, err
	}
	vfs, err := LocateVirtiofsd()
	if err != nil {
		return r, err
	}
	r.Virtiofsd, r.VirtiofsdWhy = vfs.Path, vfs.Why
	r.Accel, r.AccelReason = PickAccel("", r.QEMU)
	return r, nil
}
