package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
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

// FindVirtiofsd returns path when set, else virtiofsd from $PATH, else the
// first of VirtiofsdPaths that exists.
func FindVirtiofsd(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p, nil
	}
	for _, p := range VirtiofsdPaths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("find virtiofsd: not in $PATH nor %v "+
		"(install qemu-system-common on Debian 12, the virtiofsd package elsewhere)", VirtiofsdPaths)
}

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
	Accel, AccelReason string
}

// Probe finds the binaries the backend needs and picks the accelerator.
func Probe() (Report, error) {
	var r Report
	var err error
	if r.QEMU, err = FindQEMU(""); err != nil {
		return r, err
	}
	if r.Virtiofsd, err = FindVirtiofsd(""); err != nil {
		return r, err
	}
	r.Accel, r.AccelReason = PickAccel("", r.QEMU)
	return r, nil
}
