// Package libkrun is a purego binding of libkrun.so: it finds and loads the
// library at run time, exposes one Go method per krun_* call, and turns
// libkrun's negative errno returns into *Error. Which calls configure a VM,
// in which order, is the libkrun backend's business (helper/krun), which
// converts loftd's launch plan into these calls.
//
// It knows nothing of loftd: it must not import any package of
// github.com/loftd/loftd (internal/deptest) but internal/parts, the leaf
// package that holds the order loftd's parts are searched in. It is the only place (with its
// subpackages) that may import purego, so the guest init and the rest of the
// host stay free of it.
package libkrun

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ebitengine/purego"

	"github.com/loftd/loftd/internal/parts"
)

// LibraryEnv names the environment variable that overrides library discovery
// with a path (or soname) to load.
const LibraryEnv = "LOFTD_LIBKRUN_LIBRARY"

// MinVersion is the oldest libkrun loftd runs on: from 1.12.0 libkrun's init
// reports the workload's exit status with an ioctl on the virtiofs root
// (libkrun commit 1e3c5680 "virtio/fs: implement an ioctl to receive
// exit_code"); before it a guest that crashed reads as status 0. Open
// detects it by VersionSymbol, which appeared in the same release.
const MinVersion = "1.12"

// VersionSymbol is the required symbol that proves MinVersion: absent from
// include/libkrun.h up to v1.11.2, present from v1.12.0 on, in every build
// (no cargo feature gates it: lib.rs v1.19.0:1902-1904, v1.12.0:1062-1064).
const VersionSymbol = "krun_check_nested_virt"

// sinceVersion lists symbols by the libkrun minor release (1.x) whose header
// added them, newest first (git diff of include/libkrun.h between tags).
// Only symbols no cargo feature (net, blk, tee…) removes, so a build's
// options cannot make it look older: Version is the oldest release that has
// them all, a lower bound.
var sinceVersion = []struct {
	minor  int
	symbol string
}{
	{19, "krun_fs_add_overlay_file"},
	{18, "krun_has_feature"},
	{17, "krun_disable_implicit_vsock"},
	{16, "krun_disable_implicit_console"},
	{13, "krun_init_log"},
	{12, VersionSymbol},
}

// LibraryPart is where libkrun is looked for (internal/parts' order):
// $LOFTD_LIBKRUN_LIBRARY; ../lib/loftd next to the executable; SystemDirs,
// then the dynamic loader, by the versioned soname (what a runtime package
// ships), then the unversioned name (what a -devel package or a source
// install adds); $XDG_DATA_HOME/loftd/lib.
var LibraryPart = parts.Part{
	Name: "libkrun", Env: LibraryEnv, Files: []string{"libkrun.so.1", "libkrun.so"},
	Beside:  []string{"../lib/loftd"},
	System:  systemLibrary,
	DataDir: "lib",
}

// SystemDirs are loftd's own system library directories, where
// scripts/fetch-libkrun installs libkrun as root (with the libkrunfw it
// loads next to it) and a distribution package of loftd would.
var SystemDirs = []string{"/usr/local/lib/loftd", "/usr/lib/loftd"}

// systemLibrary is name in SystemDirs, else the soname itself: the loader
// is asked by Open, so a soname is always a candidate.
func systemLibrary(name string) (string, bool) {
	if p, ok := parts.InDirs(SystemDirs...)(name); ok {
		return p, true
	}
	return name, true
}

// LibraryCandidates lists what Open("") tries, in order: $LOFTD_LIBKRUN_LIBRARY
// alone when set, else LibraryPart's candidates.
func LibraryCandidates() []string {
	var out []string
	for _, f := range libraryCandidates() {
		out = append(out, f.Path)
	}
	return out
}

func libraryCandidates() []parts.Found {
	if p := os.Getenv(LibraryEnv); p != "" {
		// Not checked here: Open names a path that does not load.
		return []parts.Found{{Path: p, Rule: parts.Override, Why: "env " + LibraryEnv}}
	}
	return parts.Default.Candidates(LibraryPart)
}

// Lib is a loaded libkrun. Methods of optional symbols the library lacks
// return an error saying so; Missing lists them.
type Lib struct {
	path    string
	why     string // the rule that found it (internal/parts)
	handle  uintptr
	missing []string
	minor   int // libkrun 1.minor, at least (sinceVersion)

	// keep holds memory libkrun reads until the VM ends
	// (krun_fs_add_overlay_file's data): never freed, never moved.
	keep [][]byte

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

	// Optional, newer than MinVersion (the release that added each).
	hasFeature            func(feature uint64) int32                                                                // 1.18
	getMaxVCPUs           func() int32                                                                              // 1.16
	disableImplicitVsock  func(ctx uint32) int32                                                                    // 1.17
	addVsock              func(ctx uint32, tsiFeatures uint32) int32                                                // 1.17
	addVirtioConsoleMulti func(ctx uint32) int32                                                                    // 1.17
	addConsolePortInout   func(ctx uint32, console uint32, name *byte, in, out int32) int32                         // 1.17
	fsAddOverlayFile      func(ctx uint32, tag, path *byte, data *byte, n uintptr, mode uint32, oneShot bool) int32 // 1.19
	addVirtiofs3          func(ctx uint32, tag, path *byte, shmSize uint64, readOnly bool) int32                    // 1.19
}

// symbol ties a C symbol to the struct field its Go function goes in.
type symbol struct {
	name     string
	fptr     any
	required bool
}

// symbols is the whole table, resolved once by Open. Optional ones arrived
// in releases after MinVersion (or, like krun_add_net_unixstream, exist only
// in builds with a cargo feature); callers use them only when asked to, and
// Missing lists the absent ones.
func (l *Lib) symbols() []symbol {
	return []symbol{
		{"krun_set_log_level", &l.setLogLevel, true},
		{"krun_init_log", &l.initLog, false},
		{"krun_create_ctx", &l.createCtx, true},
		{"krun_free_ctx", &l.freeCtx, true},
		{"krun_set_vm_config", &l.setVMConfig, true},
		{VersionSymbol, &l.checkNestedVirt, true},
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
		{"krun_has_feature", &l.hasFeature, false},
		{"krun_get_max_vcpus", &l.getMaxVCPUs, false},
		{"krun_disable_implicit_vsock", &l.disableImplicitVsock, false},
		{"krun_add_vsock", &l.addVsock, false},
		{"krun_add_virtio_console_multiport", &l.addVirtioConsoleMulti, false},
		{"krun_add_console_port_inout", &l.addConsolePortInout, false},
		{"krun_fs_add_overlay_file", &l.fsAddOverlayFile, false},
		{"krun_add_virtiofs3", &l.addVirtiofs3, false},
	}
}

// Open loads libkrun from path (a file path or a soname for the dynamic
// linker), or from LibraryCandidates() when path is "", and resolves every
// symbol once. A missing required symbol fails Open with all of them named.
func Open(path string) (*Lib, error) {
	candidates := []parts.Found{{Path: path, Rule: parts.Override, Why: "asked for"}}
	if path == "" {
		candidates = libraryCandidates()
	}
	var errs []string
	for _, f := range candidates {
		c := f.Path
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
		l, err := bind(c, h)
		if l != nil {
			l.why = f.Why
		}
		return l, err
	}
	return nil, fmt.Errorf("load libkrun: %s (install libkrun, or set %s to its path)",
		strings.Join(errs, "; "), LibraryEnv)
}

// bind resolves the symbol table against an open handle. RegisterLibFunc
// would panic on a missing symbol, so each one is looked up with Dlsym first.
func bind(path string, h uintptr) (*Lib, error) {
	l := &Lib{path: path, handle: h}
	var missingRequired []string
	present := map[string]bool{}
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
		present[s.name] = true
		purego.RegisterFunc(s.fptr, addr)
	}
	if len(missingRequired) > 0 {
		closeErr := purego.Dlclose(h)
		why := "libkrun too old, or built without BLK=1?"
		if len(missingRequired) == 1 && missingRequired[0] == VersionSymbol {
			why = "libkrun older than " + MinVersion + ", whose init cannot report the exit status;"
		}
		err := fmt.Errorf("libkrun %s: missing symbols %s (%s need >= %s)",
			path, strings.Join(missingRequired, ", "), why, MinVersion)
		return nil, errors.Join(err, closeErr)
	}
	for _, v := range sinceVersion {
		if present[v.symbol] {
			l.minor = v.minor
			break
		}
	}
	return l, nil
}

// Version is the oldest libkrun release ("1.17") that has every symbol this
// library exports: libkrun has no call that says its version, so this is a
// lower bound read from the symbol table (sinceVersion).
func (l *Lib) Version() string { return fmt.Sprintf("1.%d", l.minor) }

// AtLeast reports whether Version is 1.minor or newer.
func (l *Lib) AtLeast(minor int) bool { return l.minor >= minor }

// Path is what Open loaded: the path or soname it was given or found.
func (l *Lib) Path() string { return l.path }

// Why names the rule that found the library: "env LOFTD_LIBKRUN_LIBRARY",
// "next to the executable", "system", "XDG data dir" (internal/parts).
func (l *Lib) Why() string { return l.why }

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
