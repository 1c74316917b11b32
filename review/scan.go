package review

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"

	"golang.org/x/sys/unix"
)

// XattrPrefix is the namespace of an overlay's own metadata in its upper
// layer: trusted.overlay. for a mount made by real root, user.overlay.
// for one made in a user namespace (userxattr). Only the prefix of the
// overlay that wrote the layer counts: user.overlay.opaque is an ordinary
// xattr to a trusted overlay, and a guest could have set it.
type XattrPrefix string

const (
	TrustedXattrs XattrPrefix = "trusted.overlay."
	UserXattrs    XattrPrefix = "user.overlay."
)

// Layers names the two trees a scan compares.
type Layers struct {
	Upper     string      // the run's upper layer (the guest's writes)
	Workspace string      // the workspace, as it is now
	Xattrs    XattrPrefix // the overlay's metadata namespace
}

// maxRenameHash bounds the files hashed to pair a deletion with an
// addition as a rename: larger ones stay a deletion and an addition.
const maxRenameHash = 64 << 20

// Scan lists the changes the upper layer makes to the workspace.
func Scan(l Layers) ([]Change, error) {
	if l.Xattrs != TrustedXattrs && l.Xattrs != UserXattrs {
		return nil, fmt.Errorf("scan %s: unknown overlay xattr prefix %q", l.Upper, l.Xattrs)
	}
	up, err := openRoot(l.Upper)
	if err != nil {
		return nil, fmt.Errorf("scan upper layer: %w", err)
	}
	defer unix.Close(up)
	ws, err := openRoot(l.Workspace)
	if err != nil {
		return nil, fmt.Errorf("scan workspace: %w", err)
	}
	defer unix.Close(ws)
	s := &scanner{up: up, ws: ws, prefix: string(l.Xattrs)}
	if err := s.dir(""); err != nil {
		return nil, fmt.Errorf("scan %s: %w", l.Upper, err)
	}
	s.pairRenames()
	for i := range s.out {
		s.out[i].Flags = hostCodeFlags(s.out[i])
	}
	sortChanges(s.out)
	return s.out, nil
}

type scanner struct {
	up, ws int
	prefix string
	out    []Change
}

// dir compares the upper directory rel with the workspace's.
func (s *scanner) dir(rel string) error {
	names, err := readDirNames(s.up, rel)
	if err != nil {
		return fmt.Errorf("read %q: %w", rel, err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.entry(joinRel(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

// entry compares one upper entry with what the workspace has at rel.
func (s *scanner) entry(rel string) error {
	var ust unix.Stat_t
	dir, base := splitRel(rel)
	dfd, err := openBeneath(s.up, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open %q: %w", dir, err)
	}
	err = unix.Fstatat(dfd, base, &ust, unix.AT_SYMLINK_NOFOLLOW)
	unix.Close(dfd)
	if err != nil {
		return fmt.Errorf("stat %q: %w", rel, err)
	}
	wst, werr := lstatBeneath(s.ws, rel)
	inWS := werr == nil
	if werr != nil && !notThere(werr) {
		return fmt.Errorf("workspace %q: %w", rel, werr)
	}
	x, err := s.xattrs(rel, ust)
	if err != nil {
		return err
	}
	switch {
	case x.unsupported != "":
		s.out = append(s.out, Change{Kind: Unsupported, Path: rel, Type: typeOf(ust.Mode), Note: x.unsupported})
		return nil
	case isWhiteout(ust) || x.whiteout:
		if inWS {
			s.out = append(s.out, Change{Kind: Deleted, Path: rel, Type: typeOf(wst.Mode), OldMode: permOf(wst.Mode)})
		}
		return nil
	}
	c := Change{Path: rel, Type: typeOf(ust.Mode), NewMode: permOf(ust.Mode)}
	if inWS {
		c.OldMode = permOf(wst.Mode)
	}
	switch fileType(ust.Mode) {
	case unix.S_IFDIR:
		return s.dirEntry(rel, c, inWS && fileType(wst.Mode) == unix.S_IFDIR, inWS, x.opaque)
	case unix.S_IFREG:
		return s.fileEntry(rel, c, wst, inWS)
	case unix.S_IFLNK:
		return s.linkEntry(rel, c, wst, inWS)
	default:
		c.Kind, c.Note = Unsupported, "a device, fifo or socket: never applied"
		s.out = append(s.out, c)
		return nil
	}
}

func (s *scanner) dirEntry(rel string, c Change, wsDir, inWS, opaque bool) error {
	switch {
	case !inWS:
		c.Kind = Added
		s.out = append(s.out, c)
	case !wsDir:
		c.Kind = Replaced
		s.out = append(s.out, c)
	case opaque:
		// The guest removed the directory and made it again: what the
		// workspace has there and the upper layer lacks is deleted.
		if err := s.opaqueDeletions(rel); err != nil {
			return err
		}
		fallthrough
	default:
		if c.OldMode != c.NewMode {
			c.Kind = ModeChanged
			s.out = append(s.out, c)
		}
	}
	return s.dir(rel)
}

func (s *scanner) opaqueDeletions(rel string) error {
	wsNames, err := readDirNames(s.ws, rel)
	if err != nil {
		return fmt.Errorf("workspace %q: %w", rel, err)
	}
	sort.Strings(wsNames)
	for _, name := range wsNames {
		p := joinRel(rel, name)
		if _, err := lstatBeneath(s.up, p); err == nil {
			continue // the upper entry decides
		}
		st, err := lstatBeneath(s.ws, p)
		if err != nil {
			return fmt.Errorf("workspace %q: %w", p, err)
		}
		s.out = append(s.out, Change{Kind: Deleted, Path: p, Type: typeOf(st.Mode), OldMode: permOf(st.Mode)})
	}
	return nil
}

func (s *scanner) fileEntry(rel string, c Change, wst unix.Stat_t, inWS bool) error {
	switch {
	case !inWS:
		c.Kind = Added
	case fileType(wst.Mode) != unix.S_IFREG:
		c.Kind = Replaced
	default:
		same := false
		if wst.Size == c.size(s.up) {
			var err error
			if same, err = sameContent(s.up, s.ws, rel); err != nil {
				return fmt.Errorf("compare %q: %w", rel, err)
			}
		}
		switch {
		case !same:
			c.Kind = Modified
		case c.OldMode != c.NewMode:
			c.Kind = ModeChanged
		default:
			return nil // copied up, not changed (a touch, a chown)
		}
	}
	if c.Kind != ModeChanged {
		bin, err := isBinary(s.up, rel)
		if err != nil {
			return fmt.Errorf("read %q: %w", rel, err)
		}
		c.Binary = bin
	}
	s.out = append(s.out, c)
	return nil
}

// size is the upper file's size (-1 when it cannot be read).
func (c Change) size(up int) int64 {
	st, err := lstatBeneath(up, c.Path)
	if err != nil {
		return -1
	}
	return st.Size
}

func (s *scanner) linkEntry(rel string, c Change, wst unix.Stat_t, inWS bool) error {
	target, err := readlinkBeneath(s.up, rel)
	if err != nil {
		return fmt.Errorf("readlink %q: %w", rel, err)
	}
	c.Target, c.NewMode, c.OldMode = target, 0, 0
	switch {
	case !inWS:
		c.Kind = Added
	case fileType(wst.Mode) != unix.S_IFLNK:
		c.Kind = Replaced
	default:
		old, err := readlinkBeneath(s.ws, rel)
		if err != nil {
			return fmt.Errorf("workspace readlink %q: %w", rel, err)
		}
		if old == target {
			return nil
		}
		c.Kind = Modified
	}
	s.out = append(s.out, c)
	return nil
}

// pairRenames turns a deleted regular file and an added one with the same
// content into one rename (an overlay records a rename as exactly that).
func (s *scanner) pairRenames() {
	added := map[[32]byte]int{}
	for i, c := range s.out {
		if c.Kind == Added && c.Type == File {
			if h, ok := hashFile(s.up, c.Path); ok {
				if _, dup := added[h]; !dup {
					added[h] = i
				}
			}
		}
	}
	drop := map[int]bool{}
	for i, c := range s.out {
		if c.Kind != Deleted || c.Type != File {
			continue
		}
		h, ok := hashFile(s.ws, c.Path)
		if !ok {
			continue
		}
		j, ok := added[h]
		if !ok {
			continue
		}
		delete(added, h)
		a := &s.out[j]
		a.Kind, a.From, a.OldMode = Renamed, c.Path, c.OldMode
		drop[i] = true
	}
	kept := s.out[:0]
	for i, c := range s.out {
		if !drop[i] {
			kept = append(kept, c)
		}
	}
	s.out = kept
}

func hashFile(root int, rel string) ([32]byte, bool) {
	f, err := openFile(root, rel)
	if err != nil {
		return [32]byte{}, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() > maxRenameHash {
		return [32]byte{}, false
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, false
	}
	return [32]byte(h.Sum(nil)), true
}

func isWhiteout(st unix.Stat_t) bool {
	return fileType(st.Mode) == unix.S_IFCHR && st.Rdev == 0
}

func typeOf(mode uint32) Type {
	switch fileType(mode) {
	case unix.S_IFREG:
		return File
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFLNK:
		return Symlink
	}
	return Other
}

// permOf is a stat mode's permission and set-id bits as an fs.FileMode.
func permOf(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// notThere: the workspace has no entry at a path, or not one reachable
// without a symlink (ELOOP: a link on the way is not the directory the
// guest wrote into, and is replaced, never followed).
func notThere(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}
