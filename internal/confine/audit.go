package confine

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// Denial is one system call an audit run made outside its allow-list, as
// the kernel logged it (audit type=1326, SECCOMP_RET_LOG).
type Denial struct {
	PID     int
	Comm    string
	Syscall string // the name, or "#N" for a number this table lacks
}

// seccompLine matches a seccomp audit record in `dmesg`, /dev/kmsg or
// /var/log/audit/audit.log: "type=1326 … pid=N … comm="X" … syscall=N".
var seccompLine = regexp.MustCompile(`type=1326 .*?\bpid=(\d+) .*?\bcomm="([^"]*)".*?\bsyscall=(\d+)`)

// ReadDenials reads the seccomp records of an audit log. comm, when not
// empty, keeps only the processes with that command name (the kernel's
// 15-byte comm: "loftd", "qemu-system-x86").
func ReadDenials(r io.Reader, comm string) ([]Denial, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	var out []Denial
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := seccompLine.FindStringSubmatch(sc.Text())
		if m == nil || (comm != "" && m[2] != comm) {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		nr, _ := strconv.Atoi(m[3])
		name, ok := native.SyscallNumbers[nr]
		if !ok {
			name = "#" + m[3]
		}
		out = append(out, Denial{PID: pid, Comm: m[2], Syscall: name})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// Missing is the sorted, distinct system calls of ds: what to add to the
// allow-list (a Group in syscalls.go) so the audited run passes enforced.
func Missing(ds []Denial) []string {
	var names []string
	for _, d := range ds {
		names = append(names, d.Syscall)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// ReadKmsg reads the seccomp records in the kernel's log buffer
// (/dev/kmsg, root only) without waiting for new ones.
func ReadKmsg() ([]Denial, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/dev/kmsg", Err: err}
	}
	defer unix.Close(fd)
	var b strings.Builder
	buf := make([]byte, 16<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE { // a record was overwritten: go on
			continue
		}
		if err == unix.EAGAIN || n <= 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read /dev/kmsg: %w", err)
		}
		// One record per read: "PRIO,SEQ,USEC,FLAGS;TEXT\n".
		_, text, _ := strings.Cut(string(buf[:n]), ";")
		b.WriteString(text)
	}
	return ReadDenials(strings.NewReader(b.String()), "")
}
