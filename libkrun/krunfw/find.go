// Package krunfw gets the guest kernel out of libkrunfw.so, the library
// libkrun boots its guests with, and wraps it as a PVH ELF that QEMU's
// -kernel can boot, so the QEMU backend runs the very kernel libkrun would.
//
// It owns library discovery for libkrunfw (in internal/parts' order) and
// the ELF wrapping. It must not import any other package of loftd but
// internal/parts (host in particular): doctor and the QEMU backend call it,
// not the other way round.
package krunfw

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebitengine/purego"

	"github.com/loftd/loftd/internal/parts"
)

// LibraryEnv overrides discovery with a path (or soname) of libkrunfw.
const LibraryEnv = "LOFTD_LIBKRUNFW_LIBRARY"

// Sonames are the libkrunfw ABIs whose krunfw_get_kernel we know, newest first.
var Sonames = []string{"libkrunfw.so.5", "libkrunfw.so.4"}

// SearchDirs are the directories Find looks in when the dynamic loader does
// not know libkrunfw (a library unpacked by hand, a /usr/local install).
var SearchDirs = []string{
	"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
	"/usr/local/lib/x86_64-linux-gnu", "/usr/local/lib64", "/usr/local/lib",
	// loftd's own, where scripts/fetch-libkrun puts the libkrunfw it
	// installs next to libkrun.
	"/usr/local/lib/loftd", "/usr/lib/loftd",
}

// Part is where libkrunfw is looked for, in internal/parts' order:
// $LOFTD_LIBKRUNFW_LIBRARY; ../lib/loftd next to the executable (what
// `make install` fills); a soname the dynamic loader resolves, else
// SearchDirs; $XDG_DATA_HOME/loftd/lib (what scripts/fetch-libkrunfw
// without arguments fills).
var Part = parts.Part{
	Name: "libkrunfw", Env: LibraryEnv, Files: Sonames,
	Beside:  []string{"../lib/loftd"},
	System:  systemLib,
	DataDir: "lib",
	Hint: "install the distribution's libkrunfw package, or run scripts/fetch-libkrunfw, " +
		"which puts it in $XDG_DATA_HOME/loftd/lib",
}

// systemLib finds a soname as the dynamic loader does (the file it maps),
// else in SearchDirs.
func systemLib(name string) (string, bool) {
	if h, err := purego.Dlopen(name, purego.RTLD_LAZY|purego.RTLD_LOCAL); err == nil {
		p := loadedPath(name)
		_ = purego.Dlclose(h)
		return p, true
	}
	return parts.InDirs(SearchDirs...)(name)
}

// Find returns the path of the libkrunfw to load (Locate's).
func Find() (string, error) {
	f, err := Locate()
	return f.Path, err
}

// Locate returns the libkrunfw to load and the rule that found it.
func Locate() (parts.Found, error) { return parts.Find(Part, "") }

// SonameFor is the libkrunfw a libkrun release (1.minor) loads itself, by
// soname through the dynamic loader: libkrunfw.so.5 from 1.17 (lib.rs
// v1.17.0:76, v1.19.0:75), libkrunfw.so.4 before (v1.16.0:79, v1.12.0:61).
func SonameFor(minor int) string {
	if minor >= 17 {
		return "libkrunfw.so.5"
	}
	return "libkrunfw.so.4"
}

// Loadable reports whether the dynamic loader finds soname the way libkrun
// looks for it (libloading::Library::new(KRUNFW_NAME), lib.rs v1.19.0:112-113),
// and the file it resolves to.
func Loadable(soname string) (string, error) {
	h, err := purego.Dlopen(soname, purego.RTLD_LAZY|purego.RTLD_LOCAL)
	if err != nil {
		return "", fmt.Errorf("libkrun loads %s through the dynamic loader, which does not find it: %w "+
			"(install libkrunfw, or put its directory in LD_LIBRARY_PATH)", soname, err)
	}
	defer purego.Dlclose(h)
	return loadedPath(soname), nil
}

// LoadableFrom is Loadable as seen from the libkrun at lib: libkrun's own
// dlopen searches lib's DT_RUNPATH (or DT_RPATH) before the loader's
// defaults, so a libkrun linked with RUNPATH $ORIGIN, as
// scripts/fetch-libkrun builds it, finds the libkrunfw installed next to
// it. Loftd's own process has no such run path; it looks there itself.
func LoadableFrom(lib, soname string) (string, error) {
	for _, dir := range runPath(lib) {
		if p := filepath.Join(dir, soname); fileExists(p) {
			return p, nil
		}
	}
	return Loadable(soname)
}

// runPath lists the directories of lib's DT_RUNPATH, else DT_RPATH, with
// $ORIGIN (and ${ORIGIN}) expanded to lib's directory. A soname (no
// slash) or an unreadable file has none.
func runPath(lib string) []string {
	if !strings.Contains(lib, "/") {
		return nil
	}
	f, err := elf.Open(lib)
	if err != nil {
		return nil
	}
	defer f.Close()
	paths, _ := f.DynString(elf.DT_RUNPATH)
	if len(paths) == 0 {
		paths, _ = f.DynString(elf.DT_RPATH)
	}
	origin := filepath.Dir(lib)
	var dirs []string
	for _, p := range paths {
		for _, d := range strings.Split(p, ":") {
			d = strings.NewReplacer("${ORIGIN}", origin, "$ORIGIN", origin).Replace(d)
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// loadedPath finds the file a loaded soname maps, in /proc/self/maps; the
// soname itself when that fails.
func loadedPath(soname string) string {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return soname
	}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '/'); i >= 0 && strings.HasPrefix(filepath.Base(line[i:]), soname) {
			return line[i:]
		}
	}
	return soname
}
