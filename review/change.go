package review

import (
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Kind is what happened to one path.
type Kind string

const (
	Added    Kind = "added"
	Modified Kind = "modified"
	Deleted  Kind = "deleted"
	Renamed  Kind = "renamed"
	// ModeChanged: same content (or a directory), other permission bits.
	ModeChanged Kind = "mode"
	// Replaced: a different type now (a file where a directory was).
	Replaced Kind = "replaced"
	// Unsupported: a device, fifo, socket or overlay metadata the guest
	// left; listed, never applied.
	Unsupported Kind = "unsupported"
)

// Type is an entry's file type.
type Type string

const (
	File    Type = "file"
	Dir     Type = "dir"
	Symlink Type = "symlink"
	Other   Type = "other"
)

// Change is one difference between the upper layer and the workspace.
type Change struct {
	Kind Kind   `json:"kind"`
	Path string `json:"path"`           // slash-separated, relative to the workspace
	From string `json:"from,omitempty"` // Renamed: the old path
	Type Type   `json:"type"`           // the new entry's type (Deleted: the old one's)
	// OldMode and NewMode are permission bits (0 when absent).
	OldMode fs.FileMode `json:"old_mode,omitempty"`
	NewMode fs.FileMode `json:"new_mode,omitempty"`
	Target  string      `json:"target,omitempty"` // Symlink: the new link's target
	Binary  bool        `json:"binary,omitempty"`
	// Flags name why the change can run code on the host; flagged changes
	// sort first.
	Flags []string `json:"flags,omitempty"`
	Note  string   `json:"note,omitempty"`
}

// Touches reports whether the change is selected by p (a path or a
// directory above it); a rename is selected by either of its paths.
func (c Change) Touches(p string) bool {
	p = strings.Trim(path.Clean("/"+p), "/")
	under := func(q string) bool {
		return p == "" || q == p || strings.HasPrefix(q, p+"/")
	}
	return under(c.Path) || (c.From != "" && under(c.From))
}

// hostCodeFlags names why a change makes the host run code when
// the user next runs git or enters the directory.
func hostCodeFlags(c Change) []string {
	var flags []string
	p := c.Path
	switch {
	case strings.HasPrefix(p, ".git/hooks/") || p == ".git/hooks":
		flags = append(flags, "git hook: runs on the host at the next git command")
	case p == ".git/config":
		flags = append(flags, "git config: can name programs git runs (core.fsmonitor, core.hooksPath, aliases)")
	case p == ".envrc" || strings.HasSuffix(p, "/.envrc"):
		flags = append(flags, "direnv .envrc: runs when a shell enters the directory")
	}
	if c.Kind != Deleted && c.Type != Dir && c.NewMode&0o111 != 0 && c.OldMode&0o111 == 0 {
		flags = append(flags, "gained the executable bit")
	}
	if c.NewMode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		flags = append(flags, "set-id bit (never applied)")
	}
	return flags
}

// sortChanges puts flagged changes first, then orders by path.
func sortChanges(cs []Change) {
	sort.SliceStable(cs, func(i, j int) bool {
		fi, fj := len(cs[i].Flags) > 0, len(cs[j].Flags) > 0
		if fi != fj {
			return fi
		}
		return cs[i].Path < cs[j].Path
	})
}
