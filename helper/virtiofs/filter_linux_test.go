package virtiofs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containers/storage/pkg/reexec"
	"golang.org/x/sys/unix"
)

// underFilterEnv makes the test binary, re-run as a child, install the
// filter and try each call (the filter cannot be removed: the test
// process itself must not carry it).
const underFilterEnv = "_LOFTD_TEST_UNDER_FILTER"

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	if dir := os.Getenv(underFilterEnv); dir != "" {
		if err := InstallFilter(); err != nil {
			fmt.Println("install:", err)
			os.Exit(1)
		}
		tryCalls(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// filterCases are the calls the child makes in dir, and the errno each must
// get (0: allowed).
var filterCases = []struct {
	name string
	want unix.Errno
	call func(dir string) error
}{
	{"chmod 0755", 0, func(d string) error { return unix.Chmod(filepath.Join(d, "f"), 0o755) }},
	{"chmod 4755", unix.EPERM, func(d string) error { return unix.Chmod(filepath.Join(d, "f"), 0o4755) }},
	{"chmod 2755", unix.EPERM, func(d string) error { return unix.Chmod(filepath.Join(d, "f"), 0o2755) }},
	{"fchmodat 6755", unix.EPERM, func(d string) error { return unix.Fchmodat(unix.AT_FDCWD, filepath.Join(d, "f"), 0o6755, 0) }},
	{"fchmod 4755", unix.EPERM, func(d string) error {
		f, err := os.Open(filepath.Join(d, "f"))
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fchmod(int(f.Fd()), 0o4755)
	}},
	{"openat O_CREAT 0644", 0, func(d string) error { return create(filepath.Join(d, "g"), 0o644) }},
	{"openat O_CREAT 4755", unix.EPERM, func(d string) error { return create(filepath.Join(d, "h"), 0o4755) }},
	{"mkdir 2775", unix.EPERM, func(d string) error { return unix.Mkdir(filepath.Join(d, "sgid"), 0o2775) }},
	{"mkdir 0755", 0, func(d string) error { return unix.Mkdir(filepath.Join(d, "plain"), 0o755) }},
	{"mknod fifo", 0, func(d string) error { return unix.Mknod(filepath.Join(d, "fifo"), unix.S_IFIFO|0o644, 0) }},
	{"mknod char 1:3", unix.EPERM, func(d string) error {
		return unix.Mknodat(unix.AT_FDCWD, filepath.Join(d, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	}},
	{"mknod block 8:0", unix.EPERM, func(d string) error {
		return unix.Mknod(filepath.Join(d, "sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0)))
	}},
	{"mknod regular 4755", unix.EPERM, func(d string) error { return unix.Mknod(filepath.Join(d, "r"), unix.S_IFREG|0o4755, 0) }},
	{"openat2", unix.ENOSYS, func(d string) error {
		fd, err := unix.Openat2(unix.AT_FDCWD, d, &unix.OpenHow{Flags: unix.O_RDONLY})
		if err == nil {
			unix.Close(fd)
		}
		return err
	}},
	{"io_uring_setup", unix.ENOSYS, func(string) error {
		_, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}},
}

func create(path string, mode uint32) error {
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, mode)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// tryCalls prints "NAME: ERRNO" for each case.
func tryCalls(dir string) {
	for _, c := range filterCases {
		var errno unix.Errno
		if err := c.call(dir); err != nil && !errors.As(err, &errno) {
			errno = unix.Errno(0xffff)
		}
		fmt.Printf("%s: %d\n", c.name, int(errno))
	}
}

// TestFilter runs the cases under the filter in a child and checks each
// errno. As root the device cases also show the filter, not a missing
// CAP_MKNOD, refused them.
func TestFilter(t *testing.T) {
	dir := t.TempDir()
	unix.Umask(0)
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), underFilterEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, errno, _ := strings.Cut(line, ": ")
		got[name] = errno
	}
	for _, c := range filterCases {
		if want := fmt.Sprint(int(c.want)); got[c.name] != want {
			t.Errorf("%s under the filter: errno %s, want %d (%v)", c.name, got[c.name], c.want, c.want)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
		t.Errorf("f is %v after the refused chmods", fi.Mode())
	}
}
