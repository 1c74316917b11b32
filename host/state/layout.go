// Package state is loftd's on-disk state (the layout of DESIGN.md "State
// layout"): the state directory's parts, workspaces and their names, and
// task directories — how a task is claimed, listed, kept and collected. It
// knows nothing of the command line or the session flow (host imports it,
// never the reverse).
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// State is the on-disk layout of DESIGN.md "State layout".
type State struct {
	Dir string
}

func (s State) Images() string     { return filepath.Join(s.Dir, "images") }
func (s State) Tasks() string      { return filepath.Join(s.Dir, "tasks") }
func (s State) Kernels() string    { return filepath.Join(s.Dir, "kernels") }
func (s State) Workspaces() string { return filepath.Join(s.Dir, "workspaces") }

// Workspace is the per-workspace state directory and its files.
type Workspace struct {
	Source string // the project directory
	Dir    string // STATE/workspaces/<slug>-<hash>
}

func (w Workspace) NixDisk() string        { return filepath.Join(w.Dir, "nix.raw") }
func (w Workspace) ContainersDisk() string { return filepath.Join(w.Dir, "containers.raw") }
func (w Workspace) Lock() string           { return filepath.Join(w.Dir, "lock") }

// Snapshots is where the snapshots of one disk ("nix", "containers") live.
func (w Workspace) Snapshots(target string) string {
	return filepath.Join(w.Dir, "snapshots", target)
}

// maxSlug bounds the readable part of a workspace name: a project
// directory may be named with up to NAME_MAX (255) bytes, and slug, dash and
// hash must still fit in one file name. The hash alone keeps names apart.
const maxSlug = 48

// WorkspaceName is "<slug>-<first 8 hex of sha256(abs path)>", slug being
// the base name reduced to [a-z0-9-] and cut to maxSlug bytes. The hash
// keeps two projects with one base name apart; the slug keeps the directory
// readable.
func WorkspaceName(absPath string) string {
	sum := sha256.Sum256([]byte(absPath))
	var b strings.Builder
	for _, r := range strings.ToLower(filepath.Base(absPath)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r == '_' || r == '.' || r == ' ':
			b.WriteByte('-')
		}
	}
	slug := strings.Trim(b.String(), "-")
	if len(slug) > maxSlug {
		slug = strings.TrimRight(slug[:maxSlug], "-") // ASCII only: a byte cut is a rune cut
	}
	if slug == "" {
		slug = "workspace"
	}
	return slug + "-" + hex.EncodeToString(sum[:4])
}

// Workspace returns the state of the project at src (absolute).
func (s State) Workspace(src string) Workspace {
	return Workspace{Source: src, Dir: filepath.Join(s.Workspaces(), WorkspaceName(src))}
}

// FindWorkspace returns the git top level above dir, else dir itself.
func FindWorkspace(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("workspace %s: %w", dir, err)
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("workspace %s: %w", dir, err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return abs, nil
		}
	}
}

// BootstrapDone is the stamp of a bootstrap script that succeeded: while it
// is there, the script does not run again. BootstrapLog keeps the output
// of its last run.
func (w Workspace) BootstrapDone() string { return filepath.Join(w.Dir, "bootstrap.done") }
func (w Workspace) BootstrapLog() string  { return filepath.Join(w.Dir, "bootstrap.log") }
