package host

import (
	"fmt"

	"github.com/loftd/loftd/krun"
	"github.com/loftd/loftd/krun/krunfw"
	"github.com/loftd/loftd/vmm/qemu"
)

// vmmChoice is the backend a session boots with, and the libraries it needs.
type vmmChoice struct {
	name    string // krun or qemu
	library string // libkrun, for krun
	krunfw  string // libkrunfw, for qemu
}

// pickVMM resolves --vmm. auto is krun when libkrun loads (the parent only
// opens it to check its symbols; krun_start_enter runs in the helper),
// else qemu. why says what decided, for --debug.
func pickVMM(want string) (vmmChoice, string, error) {
	var krunErr error
	if want == "" || want == "auto" || want == "krun" {
		lib, err := krun.Open("")
		if err == nil {
			path := lib.Path()
			lib.Close()
			return vmmChoice{name: "krun", library: path}, "libkrun loads from " + path, nil
		}
		krunErr = err
		if want == "krun" {
			return vmmChoice{}, "", fmt.Errorf("--vmm krun: %w (install libkrun or set %s; 'loftd doctor' tells more)", err, krun.LibraryEnv)
		}
	}
	fw, err := krunfw.Find()
	if err == nil {
		_, err = qemu.FindQEMU("")
	}
	if err == nil {
		_, err = qemu.FindVirtiofsd("")
	}
	if err != nil {
		if want == "qemu" {
			return vmmChoice{}, "", fmt.Errorf("--vmm qemu: %w", err)
		}
		return vmmChoice{}, "", fmt.Errorf("no VM backend can run here: libkrun: %v; qemu: %w ('loftd doctor' lists the fixes)", krunErr, err)
	}
	why := "asked for with --vmm qemu"
	if krunErr != nil {
		why = "libkrun does not load (" + krunErr.Error() + "); QEMU and libkrunfw are there"
	}
	return vmmChoice{name: "qemu", krunfw: fw}, why, nil
}
