package disks

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procLock is one line of /proc/locks.
type procLock struct {
	pid       int
	major     uint32
	minor     uint32
	ino       uint64
	exclusive bool
}

// parseProcLocks reads the FLOCK locks that are held (not waited for) from
// /proc/locks text, e.g.
//
//	1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF
//	2: FLOCK  ADVISORY  READ  1235 fd:01:42 0 EOF
//	2: -> FLOCK  ADVISORY  WRITE 1236 fd:01:42 0 EOF
//
// The device numbers are hex, the inode decimal.
func parseProcLocks(r io.Reader) ([]procLock, error) {
	var locks []procLock
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" {
			continue // POSIX/OFD locks, waiters ("->"), or noise
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			return nil, fmt.Errorf("parse /proc/locks line %q: %w", sc.Text(), err)
		}
		id := strings.Split(f[5], ":")
		if len(id) != 3 {
			return nil, fmt.Errorf("parse /proc/locks line %q: bad file id", sc.Text())
		}
		major, err1 := strconv.ParseUint(id[0], 16, 32)
		minor, err2 := strconv.ParseUint(id[1], 16, 32)
		ino, err3 := strconv.ParseUint(id[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("parse /proc/locks line %q: bad file id", sc.Text())
		}
		locks = append(locks, procLock{pid, uint32(major), uint32(minor), ino, f[3] == "WRITE"})
	}
	return locks, sc.Err()
}

// lockHolders finds the processes holding flocks on f's file.
//
// /proc/locks names a file by its superblock's device and inode. That device
// is what stat reports on most filesystems, but not on btrfs, where stat
// reports a per-subvolume anonymous device. So a line whose device matches
// is taken as is; one that matches only the inode is taken when its process
// has the same file open (compared by stat through /proc/PID/fd).
func lockHolders(f *os.File) ([]Holder, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		return nil, err
	}
	locks, err := parseProcLocks(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var holders []Holder
	seen := map[int]bool{}
	for _, l := range locks {
		if l.ino != st.Ino || seen[l.pid] {
			continue
		}
		sameDev := l.major == unix.Major(st.Dev) && l.minor == unix.Minor(st.Dev)
		if !sameDev && !hasOpen(l.pid, fi) {
			continue
		}
		seen[l.pid] = true
		holders = append(holders, Holder{Pid: l.pid, Cmdline: cmdline(l.pid), Exclusive: l.exclusive})
	}
	return holders, nil
}

// hasOpen reports whether process pid has the file fi open.
func hasOpen(pid int, fi os.FileInfo) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && os.SameFile(st, fi) {
			return true
		}
	}
	return false
}

// cmdline returns pid's arguments joined by spaces, or "" when the process
// is gone or unreadable.
func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	return strings.Join(args, " ")
}
