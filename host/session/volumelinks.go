package session

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/loftd/loftd/host/state"
)

// Whose link is it? A volume's source (-v, [agentbox] mounts) is a path
// the user gave, and the links on it are of two kinds:
//
//   - the user's: every link outside the directories loftd shares with a
//     guest (~/.claude -> ~/dotfiles/claude, a -v source that is a link, a
//     workspace reached through a link). loftd resolves them on the host
//     before boot, so the VMM and the copy only ever see real paths.
//   - the guest's: a link inside a shared directory (the workspace, a
//     directory volume), where a guest, in this run or an earlier one,
//     could have planted it. loftd never follows one: the source is
//     refused, naming the link.
//
// The copy of a single-file source then opens the resolved path with
// inroot.Open (openat2 RESOLVE_NO_SYMLINKS), so a link swapped in after the
// check is refused too, never followed.

// maxLinks bounds the links one source may go through, as the kernel's
// own limit for a path walk.
const maxLinks = 40

// resolveSessionVolumes resolves the session's volumes against its
// workspace (resolveVolumes), before boot and before loftd enters a user
// namespace: the user's links are read with the user's own rights.
func resolveSessionVolumes(opts *Options) error {
	if len(opts.Volumes) == 0 {
		return nil
	}
	dir := opts.Workspace
	if dir == "" {
		dir = "."
	}
	ws, err := state.FindWorkspace(dir)
	if err != nil {
		return err
	}
	opts.Volumes, err = resolveVolumes(opts.Volumes, ws)
	return err
}

// resolveVolumes replaces each volume's source by its real path, following
// the user's links and refusing the guest's. The shared directories are
// workspace (already a real path) and every directory volume; it
// re-checks what each source is once resolved.
func resolveVolumes(vols []Volume, workspace string) ([]Volume, error) {
	shares := []string{workspace}
	// First the directory volumes themselves, against the workspace: their
	// real paths are the other directories the guest can reach.
	for _, v := range vols {
		if v.File {
			continue
		}
		real, err := resolveUserLinks(v.Source, shares[:1])
		if err != nil {
			return nil, fmt.Errorf("volume %s:%s: %w", v.Source, v.Target, err)
		}
		shares = append(shares, real)
	}
	out := make([]Volume, 0, len(vols))
	for _, v := range vols {
		real, err := resolveUserLinks(v.Source, shares)
		if err != nil {
			return nil, fmt.Errorf("volume %s:%s: %w", v.Source, v.Target, err)
		}
		fi, err := os.Lstat(real)
		if err != nil {
			return nil, fmt.Errorf("volume %s:%s: %w", v.Source, v.Target, err)
		}
		switch {
		case fi.IsDir():
			v.File = false
		case fi.Mode().IsRegular():
			v.File = true
		default:
			return nil, fmt.Errorf("volume %s:%s: %s is neither a directory nor a regular file", v.Source, v.Target, real)
		}
		v.Source = real
		out = append(out, v)
	}
	return out, nil
}

// resolveUserLinks walks the absolute path p one component at a time,
// following a link only when the directory that holds it is outside every
// directory in shares (real paths). It returns p's real path.
func resolveUserLinks(p string, shares []string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("resolve %s: not an absolute path", p)
	}
	real := "/"
	rest := strings.Split(p, "/")
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			real = filepath.Dir(real) // real holds no link: lexical is right
			continue
		}
		next := filepath.Join(real, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			real = next
			continue
		}
		if share := shareHolding(real, shares); share != "" {
			return "", fmt.Errorf("%s is a symbolic link inside %s, which the guest can write: loftd does not follow links a guest may have planted; give the real path instead", next, share)
		}
		if links++; links > maxLinks {
			return "", &os.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			real = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return real, nil
}

// shareHolding returns the directory of shares that dir is or is below,
// or "".
func shareHolding(dir string, shares []string) string {
	for _, s := range shares {
		if s != "" && within(s, dir) {
			return s
		}
	}
	return ""
}

// errNotReadable: a file loftd, as root, would copy into the guest for a
// user who cannot read it on the host.
var errNotReadable = errors.New("not readable by the guest user's host identity")

// readableBy reports whether uid:gid may read a file of mode and owner,
// by its permission bits (supplementary groups aside: a file readable only
// through one is refused, which errs on the safe side).
func readableBy(mode fs.FileMode, owner, group uint32, uid, gid int) bool {
	perm := mode.Perm()
	switch {
	case uid == 0:
		return true
	case int(owner) == uid:
		return perm&0o400 != 0
	case int(group) == gid:
		return perm&0o040 != 0
	}
	return perm&0o004 != 0
}
