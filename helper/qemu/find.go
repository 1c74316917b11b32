package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/loftd/loftd/internal/parts"
	"github.com/loftd/loftd/launch"
)

// VirtiofsdPaths are where virtiofsd is installed outside $PATH: loftd's
// own system directories (where scripts/fetch-virtiofsd puts the Rust one
// it builds from the crate registry), the Rust virtiofsd package's place,
// and Debian 12's QEMU C virtiofsd in /usr/lib/qemu.
var VirtiofsdPaths = []string{
	"/usr/local/libexec/loftd/virtiofsd", "/usr/libexec/loftd/virtiofsd",
	"/usr/libexec/virtiofsd", "/usr/lib/virtiofsd", "/usr/lib/qemu/virtiofsd",
}

// VirtiofsdEnv overrides virtiofsd's discovery with a path.
const VirtiofsdEnv = "LOFTD_VIRTIOFSD"

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
// order: $LOFTD_VIRTIOFSD; ../libexec/loftd next to the executable; then
// the system (systemVirtiofsd); then $XDG_DATA_HOME/loftd/libexec.
var VirtiofsdPart = parts.Part{
	Name: "virtiofsd", Env: VirtiofsdEnv, Files: []string{"virtiofsd"},
	Beside:  []string{"../libexec/loftd"},
	System:  systemVirtiofsd,
	DataDir: "libexec",
	Hint: "run scripts/fetch-virtiofsd (the Rust virtiofsd from the crate registry), install the virtiofsd " +
		"package, or qemu-system-common on Debian 12 (QEMU's C virtiofsd)",
}

// systemVirtiofsd is the first Rust virtiofsd of VirtiofsdPaths and
// $PATH's, else the first virtiofsd of them.
func systemVirtiofsd(name string) (string, bool) {
	var all []string
	for _, p := range VirtiofsdPaths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			all = append(all, p)
		}
	}
	if p, ok := parts.InPath()(name); ok {
		all = append(all, p)
	}
	if len(all) == 0 {
		return "", false
	}
	return preferRust(all), true
}

// preferRust picks the first Rust virtiofsd of paths, else the first.
// The Rust one is the maintained one, and only it has --readonly and uid
// translation; QEMU's C one (removed from QEMU in 8.0) is the fallback.
func preferRust(paths []string) string {
	for _, p := range paths {
		if IsRustVirtiofsd(p) {
			return p
		}
	}
	return paths[0]
}

// FindVirtiofsd returns path when set (looked up in $PATH), else
// LocateVirtiofsd's, and its flavor: the parent resolves both once and
// carries them in the launch plan (Virtiofsd, VirtiofsdFlavor).
func FindVirtiofsd(path string) (string, launch.VirtiofsdFlavor, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", "", err
		}
		return p, VirtiofsdFlavorOf(p), nil
	}
	f, err := LocateVirtiofsd()
	if err != nil {
		return "", "", err
	}
	return f.Path, VirtiofsdFlavorOf(f.Path), nil
}

// LocateVirtiofsd finds virtiofsd and the rule that found it: the override
// as given, else the first Rust virtiofsd of the candidates, else the
// first candidate.
func LocateVirtiofsd() (parts.Found, error) {
	if f, ok, err := parts.Default.Override(VirtiofsdPart, ""); ok || err != nil {
		return f, err
	}
	all := parts.Default.Candidates(VirtiofsdPart)
	if len(all) == 0 {
		return parts.Find(VirtiofsdPart, "")
	}
	for _, f := range all {
		if IsRustVirtiofsd(f.Path) {
			return f, nil
		}
	}
	return all[0], nil
}

// What each virtiofsd flavor guarantees for loftd's shares, for doctor.
// Both serve each share from a directory fd loftd opened, through loftd's
// wrapper (no setuid/setgid bits, file capabilities or device nodes reach
// the host) and, as root, in an id-mapped user namespace (helper/virtiofs);
// they differ in read-only shares.
const (
	RustGuarantees = "ids mapped, no setuid/setgid/devices through a share; read-only shares are a read-only mount and virtiofsd's own --readonly"
	CGuarantees    = "ids mapped, no setuid/setgid/devices through a share; read-only shares rest on loftd's read-only mount alone (no --readonly)"
)

var flavors sync.Map // virtiofsd path → launch.VirtiofsdFlavor

// VirtiofsdFlavorOf tells the Rust virtiofsd (--shared-dir DIR) from QEMU's
// C one (-o source=DIR) by its --help text, asked once per path in this
// process.
func VirtiofsdFlavorOf(path string) launch.VirtiofsdFlavor {
	if v, ok := flavors.Load(path); ok {
		return v.(launch.VirtiofsdFlavor)
	}
	out, _ := exec.Command(path, "--help").CombinedOutput()
	flavor := launch.VirtiofsdC
	if strings.Contains(string(out), "--shared-dir") {
		flavor = launch.VirtiofsdRust
	}
	flavors.Store(path, flavor)
	return flavor
}

// IsRustVirtiofsd says whether path is the Rust virtiofsd (VirtiofsdFlavorOf).
func IsRustVirtiofsd(path string) bool { return VirtiofsdFlavorOf(path) == launch.VirtiofsdRust }

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
