package session

import (
	"errors"
	"fmt"
	"strings"

	"github.com/loftd/loftd/helper/krun"
	"github.com/loftd/loftd/helper/qemu"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
	"github.com/loftd/loftd/libkrun/krunfw"
)

// vmmChoice is the backend a session boots with, and the libraries it needs.
type vmmChoice struct {
	name    launch.VMM // krun or qemu
	library string     // libkrun, for krun
	// krunfw (libkrunfw), qemu and virtiofsd with its flavor, for qemu:
	// found once here, carried in the plan, never looked up again by the
	// helper.
	krunfw, qemu, virtiofsd string
	virtiofsdFlavor         launch.VirtiofsdFlavor
}

// krunfwLoadable is how the libkrun at a path finds libkrunfw (tests swap
// it: the loader's search path is fixed when the process starts).
var krunfwLoadable = krunfw.LoadableFrom

// kvmUsable tells whether libkrun can create a VM here (tests swap it).
var kvmUsable = libkrun.CheckKVM

// krunUsable says why a loaded libkrun cannot run loftd's sessions, which
// libkrun itself would only say at krun_start_enter, after --dry-run
// passed: the guest without network every session has needs
// krun_disable_implicit_vsock (1.17), and the kernel comes from the
// libkrunfw of the library's ABI, which libkrun dlopens itself.
func krunUsable(lib *libkrun.Lib) error {
	if !lib.AtLeast(krun.NoNetworkMinor) {
		return fmt.Errorf("libkrun %s is %s or older: a guest without network needs libkrun >= 1.%d (krun_disable_implicit_vsock)",
			lib.Path(), lib.Version(), krun.NoNetworkMinor)
	}
	soname := krunfw.SonameFor(krunMinor(lib))
	if _, err := krunfwLoadable(lib.Path(), soname); err != nil {
		return fmt.Errorf("libkrun %s (%s or newer): %w", lib.Path(), lib.Version(), err)
	}
	return nil
}

// krunMinor is the libkrun release as the minor number Version says.
func krunMinor(lib *libkrun.Lib) int {
	var minor int
	fmt.Sscanf(lib.Version(), "1.%d", &minor)
	return minor
}

// pickVMM resolves --vmm. auto is krun when libkrun loads and can run a
// session here (krunUsable; the parent only opens it to check, while
// krun_start_enter runs in the helper), else qemu. why says what decided,
// for --debug.
func pickVMM(want launch.VMM) (vmmChoice, string, error) {
	var krunErr error
	if want != launch.VMMQEMU {
		lib, err := libkrun.Open("")
		if err == nil {
			path := lib.Path()
			err = krunUsable(lib)
			lib.Close()
			if err == nil {
				err = kvmUsable()
			}
			if err == nil {
				return vmmChoice{name: launch.VMMKrun, library: path}, "libkrun loads from " + path + ", finds its libkrunfw and KVM works", nil
			}
		}
		krunErr = err
		if want == launch.VMMKrun && errors.Is(err, libkrun.ErrNoKVM) {
			return vmmChoice{}, "", fmt.Errorf("--vmm krun: %w", err)
		}
		if want == launch.VMMKrun {
			return vmmChoice{}, "", fmt.Errorf("--vmm krun: %w (install libkrun and libkrunfw or set %s; 'loftd doctor' tells more)", err, libkrun.LibraryEnv)
		}
	}
	c := vmmChoice{name: launch.VMMQEMU}
	var err error
	c.krunfw, err = krunfw.Find()
	if err == nil {
		c.qemu, err = qemu.FindQEMU("")
	}
	if err == nil {
		c.virtiofsd, c.virtiofsdFlavor, err = qemu.FindVirtiofsd("")
	}
	if err != nil {
		if want == launch.VMMQEMU {
			return vmmChoice{}, "", fmt.Errorf("--vmm qemu: %w", err)
		}
		return vmmChoice{}, "", fmt.Errorf("no VM backend can run here: libkrun: %v; qemu: %w ('loftd doctor' lists the fixes)", krunErr, err)
	}
	why := "asked for with --vmm qemu"
	if krunErr != nil {
		why = "libkrun cannot run here (" + krunErr.Error() + "); QEMU and libkrunfw are there"
	}
	return c, why, nil
}

// pickVMMFor is pickVMM for a session whose shares need virtiofsd's user
// namespace (idMapped: loftd runs as root). libkrun serves virtiofs from
// inside the helper, which runs as host root, with no id map: guest root
// would be host root on the workspace. --vmm krun is refused then, and
// auto means qemu.
func pickVMMFor(want launch.VMM, idMapped bool) (vmmChoice, string, error) {
	if !idMapped {
		return pickVMM(want)
	}
	switch want {
	case launch.VMMKrun:
		return vmmChoice{}, "", fmt.Errorf("--vmm krun cannot share the workspace as root: libkrun's virtiofs runs as host root with no id map, so guest root would own host files (run loftd as your user, or use --vmm qemu)")
	case launch.VMMAuto:
		c, why, err := pickVMM(launch.VMMQEMU)
		if err != nil {
			return c, why, fmt.Errorf("as root only the qemu backend can map the shares' ids: %w", err)
		}
		return c, "as root the shares need virtiofsd's id map, which libkrun cannot do", nil
	}
	return pickVMM(want)
}

// LibkrunReport is what `loftd doctor` shows about libkrun and the
// libkrunfw it would load.
type LibkrunReport struct {
	Path     string   // the libkrun loaded ("" when none loads)
	Why      string   // the rule that found it: "system", "next to the executable", …
	Version  string   // the oldest release with all its symbols ("1.17")
	Features []string // KRUN_FEATURE_* it was built with (krun_has_feature, 1.18); nil when unknown
	Missing  []string // optional symbols it lacks
	Krunfw   string   // the libkrunfw soname it loads, and the file it resolves to
	Err      error    // why krun cannot run sessions here; nil when it can
}

// DescribeLibkrun loads libkrun as a session would and reports it, for
// `loftd doctor`.
func DescribeLibkrun() LibkrunReport {
	lib, err := libkrun.Open("")
	if err != nil {
		return LibkrunReport{Err: err}
	}
	defer lib.Close()
	r := LibkrunReport{Path: lib.Path(), Why: lib.Why(), Version: lib.Version(), Missing: lib.Missing()}
	if _, err := lib.HasFeature(libkrun.FeatureNet); err == nil {
		r.Features = []string{}
		for _, f := range libkrun.Features {
			if ok, err := lib.HasFeature(f.Feature); err == nil && ok {
				r.Features = append(r.Features, f.Name)
			}
		}
	}
	soname := krunfw.SonameFor(krunMinor(lib))
	r.Krunfw = soname + " (not found)"
	if path, err := krunfwLoadable(lib.Path(), soname); err == nil {
		r.Krunfw = soname + " → " + path
	}
	if r.Err = krunUsable(lib); r.Err == nil {
		r.Err = kvmUsable()
	}
	return r
}

// Lines renders the report, one fact a line.
func (r LibkrunReport) Lines() []string {
	if r.Path == "" {
		return []string{"libkrun: " + r.Err.Error()}
	}
	features := "unknown (krun_has_feature is 1.18+)"
	if r.Features != nil {
		features = strings.Join(r.Features, ", ")
	}
	lines := []string{
		fmt.Sprintf("libkrun: %s (%s), version %s or newer", r.Path, r.Why, r.Version),
		"libkrun features: " + features,
		"libkrunfw: " + r.Krunfw,
	}
	if len(r.Missing) > 0 {
		lines = append(lines, "libkrun lacks: "+strings.Join(r.Missing, ", "))
	}
	if r.Err != nil {
		lines = append(lines, "libkrun cannot run sessions: "+r.Err.Error())
	}
	return lines
}
