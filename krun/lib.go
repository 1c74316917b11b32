// Package krun is a purego binding of libkrun.so: it finds and loads the
// library at run time, exposes one Go method per krun_* call, and turns
// libkrun's negative errno returns into *Error. Which calls configure a VM,
// in which order, is the libkrun backend's business (vmm/krun), which
// converts loftd's launch plan into these calls.
//
// It knows nothing of loftd: it must not import any package of
// github.com/loftd/loftd (internal/deptest). It is the only place (with its
// subpackages) that may import purego, so the guest init and the rest of the
// host stay free of it.
package krun

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ebitengine/purego"
)

// LibraryEnv names the environment variable that overrides library discovery
// with a path (or soname) to load.
const LibraryEnv = "LOFTD_LIBKRUN_LIBRARY"

// MinVersion is the oldest libkrun that has every required symbol (krun_add_disk
// also needs libkrun built with BLK=1). It only appears in error messages.
const MinVersion = "1.10"

// LibraryCandidates lists what Open("") tries, in order: $LOFTD_LIBKRUN_LIBRARY
// alone when set, else the versioned soname (what a runtime package ships),
// else the unversioned name (what a -devel package or a source install adds).
func LibraryCandidates() []string {
	if p := os.Getenv(LibraryEnv); p != "" {
		return []string{p}
	}
	return []string{"libkrun.so.1", "libkrun.so"}
}

// Lib is a loaded libkrun. Methods of optional symbols the library lacks
// return an error saying so; Missing lists them.
type Lib struct {
	path    string
	handle  uintptr
	missing []string

	setLogLevel             func(level uint32) int32
	initLog                 func(fd int32, level, style, options uint32) int32
	createCtx               func() int32
	freeCtx                 func(ctx uint32) int32
	setVMConfig             func(ctx uint32, vcpus uint8, ramMiB uint32) int32
	checkNestedVirt         func() int32
	setNestedVirt           func(ctx uint32, enabled bool) int32
	setRoot                 func(ctx uint32, path *byte) int32
	addDisk                 func(ctx uint32, blockID, path *byte, readOnly bool) int32
	addVirtiofs             func(ctx uint32, tag, path *byte) int32
	addNetUnixstream        func(ctx uint32, path *byte, fd int32, mac *byte, features, flags uint32) int32
	setPortMap              func(ctx uint32, portMap **byte) int32
	addVsockPort2           func(ctx uint32, port uint32, path *byte, listen bool) int32
	disableImplicitConsole  func(ctx uint32) int32
	addVirtioConsoleDefault func(ctx uint32, in, out, errFD int32) int32
	setWorkdir              func(ctx uint32, path *byte) int32
	setExec                 func(ctx uint32, path *byte, argv, envp **byte) int32
	setEnv                  func(ctx uint32, envp **byte) int32
	setRlimits              func(ctx uint32, rlimits **byte) int32
	startEnter              func(ctx uint32) int32
}

// symbol ties a C symbol to the struct field its Go function goes in.
type symbol struct {
	name     string
	fptr     any
	required bool
}

// symbols is the whole table, resolved once by Open. Optional ones arrived
// in later libkrun releases (or, for krun_set_nested_virt, are only needed
// when nested virtualization is asked for); callers use them only when asked
// to, and Missing lists the absent ones.
func (l *Lib) symbols() []symbol {
	return []symbol{
		{"krun_set_log_level", &l.setLogLevel, true},
		{"krun_init_log", &l.initLog, false},
		{"krun_create_ctx", &l.createCtx, true},
		{"krun_free_ctx", &l.freeCtx, true},
		{"krun_set_vm_config", &l.setVMConfig, true},
		{"krun_check_nested_virt", &l.checkNestedVirt, false},
		{"krun_set_nested_virt", &l.setNestedVirt, false},
		{"krun_set_root", &l.setRoot, true},
		{"krun_add_disk", &l.addDisk, true},
		{"krun_add_virtiofs", &l.addVirtiofs, true},
		{"krun_add_net_unixstream", &l.addNetUnixstream, false},
		{"krun_set_port_map", &l.setPortMap, true},
		{"krun_add_vsock_port2", &l.addVsockPort2, false},
		{"krun_disable_implicit_console", &l.disableImplicitConsole, false},
		{"krun_add_virtio_console_default", &l.addVirtioConsoleDefault, false},
		{"krun_set_workdir", &l.setWorkdir, true},
		{"krun_set_exec", &l.setExec, true},
		{"krun_set_env", &l.setEnv, true},
		{"krun_set_rlimits", &l.setRlimits, true},
		{"krun_start_enter", &l.startEnter, true},
	}
}

// Open loads libkrun from path (a file path or a soname for the dynamic
// linker), or from LibraryCandidates() when path is "", and resolves every
// symbol once. A missing required symbol fails Open with all of them named.
func Open(path string) (*Lib, error) {
	candidates := []string{path}
	if path == "" {
		candidates = LibraryCandidates()
	}
	var errs []string
	for _, c := range candidates {
		// RTLD_NOW: fail here, not at the first call, if libkrun's own
		// dependencies are broken. RTLD_GLOBAL: as crun and krunvm load it.
		h, err := purego.Dlopen(c, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			msg := err.Error() // dlerror's text usually starts with the name
			if !strings.HasPrefix(msg, c) {
				msg = c + ": " + msg
			}
			errs = append(errs, msg)
			continue
		}
		return bind(c, h)
	}
	return nil, fmt.Errorf("load libkrun: %s (install libkrun, or set %s to its path)",
		strings.Join(errs, "; "), LibraryEnv)
}

// bind resolves the symbol table against an open handle. RegisterLibFunc
// would panic on a missing symbol, so each one is looked up with Dlsym first.
func bind(path string, h uintptr) (*Lib, error) {
	l := &Lib{path: path, handle: h}
	var missingRequired []string
	for _, s := range l.symbols() {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil || addr == 0 {
			if s.required {
				missingRequired = append(missingRequired, s.name)
			} else {
				l.missing = append(l.missing, s.name)
			}
			continue
		}
		purego.RegisterFunc(s.fptr, addr)
	}
	if len(missingRequired) > 0 {
		closeErr := purego.Dlclose(h)
		err := fmt.Errorf("libkrun %s: missing symbols %s (libkrun too old, or built without BLK=1? need >= %s)",
			path, strings.Join(missingRequired, ", "), MinVersion)
		return nil, errors.Join(err, closeErr)
	}
	return l, nil
}

// Path is what Open loaded: the path or soname it was given or found.
func (l *Lib) Path() string { return l.path }

// Missing lists the optional symbols this libkrun lacks, for `loftd doctor`.
func (l *Lib) Missing() []string { return append([]string(nil), l.missing...) }

// Close unloads the library. l must not be used afterwards.
func (l *Lib) Close() error {
	if l.handle == 0 {
		return nil
	}
	err := purego.Dlclose(l.handle)
	forgetLogging(l.path, l.handle)
	l.handle = 0
	if err != nil {
		return fmt.Errorf("unload libkrun %s: %w", l.path, err)
	}
	return nil
}
