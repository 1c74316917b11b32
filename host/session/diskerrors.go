package session

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/loftd/loftd/disks"
	"golang.org/x/sys/unix"
)

// guestIOError is how the guest kernel logs a failed request on one of its
// virtio disks (/dev/vda, vdb...): QEMU reports a host write error to the
// guest (werror=report) rather than pausing the VM, so a full host
// filesystem under the state directory shows up here.
const guestIOError = "I/O error, dev vd"

// diskWriteError returns a user-facing error when the console log in
// taskDir shows that the guest's disks failed writes, naming the host
// filesystem that holds them (nixDisk's) and how full it is; nil
// otherwise. status is the workload's.
func diskWriteError(taskDir, nixDisk string, status int) error {
	line := firstLineWith(filepath.Join(taskDir, "console.log"), guestIOError, 16<<20)
	if line == "" {
		return nil
	}
	dir := filepath.Dir(nixDisk)
	free := "unknown"
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		free = disks.FormatSize(int64(st.Bavail) * st.Bsize)
	}
	if status == 0 {
		status = ExitSetup
	}
	return ExitError{Status: status, Err: fmt.Errorf(
		"the guest's disks failed writes (its kernel logged %q): the host filesystem holding %s has %s free; what the workload wrote to /nix or its containers may be lost. Free space there, or move the state directory ([state] location), and run again",
		line, dir, free)}
}

// firstLineWith returns the first line of file (read up to limit bytes)
// holding substr, trimmed of the kernel's timestamp, or "".
func firstLineWith(file, substr string, limit int64) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, limit))
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, substr) {
			if i := strings.Index(l, "] "); strings.HasPrefix(l, "[") && i > 0 {
				l = l[i+2:]
			}
			return l
		}
	}
	return ""
}
