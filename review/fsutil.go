package review

import (
	"errors"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// noFollow resolves a name beneath a directory fd without following any
// symlink or magic link on the way.
const noFollow = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openRoot opens a directory loftd itself names (the workspace, a run's
// upper layer) as the anchor of fd-relative walks.
func openRoot(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// openBeneath opens rel (slash-separated, below root) without following a
// symlink anywhere in it; flags are open(2)'s. O_NONBLOCK keeps a fifo the
// guest planted from blocking the open.
func openBeneath(root int, rel string, flags int) (int, error) {
	if rel == "" {
		rel = "."
	}
	if flags&unix.O_PATH == 0 {
		flags |= unix.O_NONBLOCK // openat2 takes no other flag with O_PATH
	}
	return unix.Openat2(root, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: uint64(noFollow),
	})
}

// lstatBeneath stats rel below root without following a symlink: the
// parent is opened with openBeneath, the last name stat'ed with
// AT_SYMLINK_NOFOLLOW. A missing entry (or parent) is fs.ErrNotExist.
func lstatBeneath(root int, rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dir, base := splitRel(rel)
	if base == "" {
		return st, unix.Fstat(root, &st)
	}
	dfd, err := openBeneath(root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return st, err
	}
	defer unix.Close(dfd)
	return st, unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
}

// splitRel splits a slash-separated relative path into its parent ("" for
// the root) and base name.
func splitRel(rel string) (dir, base string) {
	if rel == "" || rel == "." {
		return "", ""
	}
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// readlinkBeneath reads the symlink rel below root (the link itself).
func readlinkBeneath(root int, rel string) (string, error) {
	dir, base := splitRel(rel)
	dfd, err := openBeneath(root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dfd, base, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// readDirNames lists the directory rel below root.
func readDirNames(root int, rel string) ([]string, error) {
	fd, err := openBeneath(root, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	return f.Readdirnames(-1)
}

// openFile opens the regular file rel below root for reading.
func openFile(root int, rel string) (*os.File, error) {
	fd, err := openBeneath(root, rel, unix.O_RDONLY)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &os.PathError{Op: "open", Path: rel, Err: errors.New("not a regular file")}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sameContent compares two regular files byte for byte, streaming (a huge
// file costs time, never memory).
func sameContent(a, b int, rel string) (bool, error) {
	fa, err := openFile(a, rel)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := openFile(b, rel)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	return sameReaders(fa, fb)
}

func sameReaders(a, b io.Reader) (bool, error) {
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if na != nb || string(ba[:na]) != string(bb[:nb]) {
			return false, nil
		}
		aEnd := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		bEnd := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		switch {
		case ea != nil && !aEnd:
			return false, ea
		case eb != nil && !bEnd:
			return false, eb
		case aEnd || bEnd:
			return aEnd == bEnd, nil
		}
	}
}

// joinRel joins a relative directory and a name.
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name // name is one readdir entry: no '/', never "." or ".."
}

func fileType(mode uint32) uint32 { return mode & unix.S_IFMT }
