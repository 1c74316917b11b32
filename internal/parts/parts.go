// Package parts finds loftd's parts — the guest init, libkrun, libkrunfw,
// virtiofsd, passt — in one documented order, so an installed loftd works
// with no environment variable:
//
//  1. the override: a flag, else an environment variable (LOFTD_…);
//  2. next to the executable: directories relative to the real path of the
//     running loftd (../libexec/loftd, ../lib/loftd, its own directory);
//  3. the system: the dynamic loader's path, $PATH, well-known directories;
//  4. the user's data directory: $XDG_DATA_HOME/loftd (lib/ for libraries,
//     libexec/ for programs), where scripts/fetch-libkrunfw puts libkrunfw.
//
// It owns only the order and the reasons; each finder (libkrun, libkrun/krunfw,
// helper/qemu, host) describes its part. It imports nothing of loftd, and not
// purego: how the system finds a library is the caller's function.
package parts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ExeEnv carries loftd's own path into the rootless keep-id namespace,
// where /proc/self/exe reads as "/" (host sets it before entering).
const ExeEnv = "_LOFTD_EXE"

// Rule is one step of the search order.
type Rule int

const (
	Override Rule = iota + 1 // a flag or an environment variable
	Beside                   // next to the executable
	System                   // the loader's path, $PATH, well-known directories
	Data                     // $XDG_DATA_HOME/loftd
)

func (r Rule) String() string {
	switch r {
	case Override:
		return "override"
	case Beside:
		return "next to the executable"
	case System:
		return "system"
	case Data:
		return "XDG data dir"
	}
	return fmt.Sprintf("Rule(%d)", int(r))
}

// Found is a part's path and the rule that found it.
type Found struct {
	Path string
	Rule Rule
	// Why names the rule for people: "env LOFTD_LIBKRUNFW_LIBRARY",
	// "--guest-init", "next to the executable", "system", "XDG data dir".
	Why string
}

// String is how doctor shows it: "PATH (WHY)".
func (f Found) String() string { return f.Path + " (" + f.Why + ")" }

// Part says where each rule looks for one part.
type Part struct {
	Name  string   // for messages: "libkrunfw"
	Env   string   // the override variable, "" for none
	Flag  string   // the override flag, for messages: "--guest-init"
	Files []string // file names, best first (sonames newest first)
	// Beside are directories relative to the executable's directory,
	// searched in order: "../lib/loftd", ".".
	Beside []string
	// System finds a file name the way the system would (dlopen by
	// soname, $PATH, well-known directories); nil when the system has no
	// say. It returns the path (or the soname the loader resolves) and
	// whether it found one.
	System func(file string) (string, bool)
	// DataDir is the subdirectory of $XDG_DATA_HOME/loftd: "lib" or
	// "libexec"; "" skips the rule.
	DataDir string
	// Hint is the fix named when nothing is found.
	Hint string
}

// Locator reads the process's environment and executable; tests swap both.
type Locator struct {
	Getenv     func(string) string
	Executable func() (string, error)
}

// Default is the running process's locator.
var Default = Locator{Getenv: os.Getenv, Executable: Executable}

// Executable is loftd's own path: $_LOFTD_EXE inside the keep-id namespace,
// else os.Executable, with symlinks resolved (a /usr/local/bin/loftd
// linked to /opt/loftd/bin/loftd finds /opt/loftd/libexec/loftd).
func Executable() (string, error) {
	p := os.Getenv(ExeEnv)
	if p == "" {
		var err error
		if p, err = os.Executable(); err != nil {
			return "", fmt.Errorf("find loftd's executable: %w", err)
		}
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		return real, nil
	}
	return p, nil
}

// Find returns the first place the order finds p: flag (when not ""), then
// the environment variable, next to the executable, the system, the data
// directory. An override is returned as given; a path (not a bare soname)
// must exist.
func Find(p Part, flag string) (Found, error) { return Default.Find(p, flag) }

// Find is the package-level Find with l's environment.
func (l Locator) Find(p Part, flag string) (Found, error) {
	if f, ok, err := l.override(p, flag); ok || err != nil {
		return f, err
	}
	if all := l.Candidates(p); len(all) > 0 {
		return all[0], nil
	}
	return Found{}, l.notFound(p)
}

// Candidates lists what the rules after the override find, in order, each
// file once: callers that must try to load each (libkrun) walk the list.
func (l Locator) Candidates(p Part) []Found {
	var out []Found
	seen := map[string]bool{}
	add := func(path string, r Rule) {
		if !seen[path] {
			seen[path] = true
			out = append(out, Found{Path: path, Rule: r, Why: r.String()})
		}
	}
	for _, dir := range l.besideDirs(p) {
		for _, name := range p.Files {
			if path := filepath.Join(dir, name); exists(path) {
				add(path, Beside)
			}
		}
	}
	if p.System != nil {
		for _, name := range p.Files {
			if path, ok := p.System(name); ok {
				add(path, System)
			}
		}
	}
	if dir := l.dataDir(p); dir != "" {
		for _, name := range p.Files {
			if path := filepath.Join(dir, name); exists(path) {
				add(path, Data)
			}
		}
	}
	return out
}

// Override returns the flag's or the environment variable's value, if any.
func (l Locator) Override(p Part, flag string) (Found, bool, error) { return l.override(p, flag) }

func (l Locator) override(p Part, flag string) (Found, bool, error) {
	f := Found{Path: flag, Rule: Override, Why: p.Flag}
	if flag == "" {
		if p.Env == "" || l.Getenv(p.Env) == "" {
			return Found{}, false, nil
		}
		f.Path, f.Why = l.Getenv(p.Env), "env "+p.Env
	}
	if strings.Contains(f.Path, "/") {
		if _, err := os.Stat(f.Path); err != nil {
			return Found{}, true, fmt.Errorf("find %s: %s %s: %w", p.Name, f.Why, f.Path, err)
		}
	}
	return f, true, nil
}

// besideDirs are p.Beside resolved against the executable's directory;
// none when the executable is unknown.
func (l Locator) besideDirs(p Part) []string {
	if len(p.Beside) == 0 || l.Executable == nil {
		return nil
	}
	exe, err := l.Executable()
	if err != nil || exe == "" || exe == "/" {
		return nil
	}
	var dirs []string
	for _, rel := range p.Beside {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), rel))
	}
	return dirs
}

// DataHome is $XDG_DATA_HOME/loftd, else ~/.local/share/loftd; "" when
// neither variable is set.
func (l Locator) DataHome() string {
	if d := l.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "loftd")
	}
	if h := l.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "loftd")
	}
	return ""
}

func (l Locator) dataDir(p Part) string {
	if p.DataDir == "" {
		return ""
	}
	if d := l.DataHome(); d != "" {
		return filepath.Join(d, p.DataDir)
	}
	return ""
}

// Searched lists, for an error message, where the rules looked.
func (l Locator) Searched(p Part) []string {
	var out []string
	if p.Flag != "" {
		out = append(out, p.Flag)
	}
	if p.Env != "" {
		out = append(out, "$"+p.Env)
	}
	out = append(out, l.besideDirs(p)...)
	if p.System != nil {
		out = append(out, "the system")
	}
	if d := l.dataDir(p); d != "" {
		out = append(out, d)
	}
	return out
}

func (l Locator) notFound(p Part) error {
	msg := fmt.Sprintf("find %s: none of %s in %s", p.Name, strings.Join(p.Files, ", "), strings.Join(l.Searched(p), ", "))
	if p.Hint != "" {
		msg += " (" + p.Hint + ")"
	}
	return fmt.Errorf("%s", msg)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// InPath is a System function for programs: $PATH, then dirs (where
// distributions put helpers outside $PATH, such as /usr/libexec).
func InPath(dirs ...string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if p, err := exec.LookPath(name); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs, true
			}
			return p, true
		}
		return InDirs(dirs...)(name)
	}
}

// InDirs is a System function that looks in fixed directories only.
func InDirs(dirs ...string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, true
			}
		}
		return "", false
	}
}
