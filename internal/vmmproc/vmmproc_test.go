package vmmproc

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeProc writes a /proc with the given processes (stat, cmdline, and a
// status whose VmRSS is the pid in kB).
func fakeProc(t *testing.T, procs []Proc) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(p.PID))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := strconv.Itoa(p.PID) + " (" + p.Comm + ") S " + strconv.Itoa(p.PPID) + " 1 1 0 -1\n"
		cmdline := ""
		for _, a := range p.Args {
			cmdline += a + "\x00"
		}
		status := "Name:\t" + p.Comm + "\nVmRSS:\t    " + strconv.Itoa(p.PID) + " kB\n"
		for name, data := range map[string]string{"stat": stat, "cmdline": cmdline, "status": status} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestVMM(t *testing.T) {
	procs := []Proc{
		{PID: 1, PPID: 0, Comm: "init"},
		// A QEMU session: loftd 100 → helper 101 → qemu 103 (and virtiofsd 102).
		{PID: 100, PPID: 1, Comm: "loftd", Args: []string{"loftd", "--", "make"}},
		{PID: 101, PPID: 100, Comm: "loftd", Args: []string{"/proc/self/exe", "internal", "enter", "--error-fd=3", "/t/a"}},
		{PID: 102, PPID: 101, Comm: "virtiofsd", Args: []string{"virtiofsd", "--fd=3"}},
		{PID: 103, PPID: 101, Comm: "qemu-system-x86", Args: []string{"qemu-system-x86_64"}},
		// A libkrun session, rootless: loftd 200 → unshare'd loftd 201 → helper 202.
		{PID: 200, PPID: 1, Comm: "loftd", Args: []string{"loftd"}},
		{PID: 201, PPID: 200, Comm: "loftd", Args: []string{"loftd", "--", "true"}},
		{PID: 202, PPID: 201, Comm: "loftd", Args: []string{"loftd", "internal", "enter", "/t/b"}},
		// A confined QEMU, exec'd from an fd by its wrapper: comm is "16".
		{PID: 400, PPID: 1, Comm: "loftd", Args: []string{"loftd"}},
		{PID: 401, PPID: 400, Comm: "loftd", Args: []string{"loftd", "internal", "enter", "/t/c"}},
		{PID: 402, PPID: 401, Comm: "16", Args: []string{"/usr/bin/qemu-system-x86_64", "-accel"}},
		// A comm with a space and a parenthesis must not confuse stat parsing.
		{PID: 300, PPID: 1, Comm: "loftd"},
		{PID: 301, PPID: 300, Comm: "a) b", Args: []string{"x"}},
	}
	table, err := Table(fakeProc(t, procs))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ pid, want int }{
		{100, 103}, // the QEMU child, not the helper
		{200, 202}, // libkrun: the helper is the VMM
		{300, 0},   // no VM yet
		{400, 402}, // QEMU by its argv[0]
		{999, 0},   // no such loftd
	} {
		if got := VMM(table, tt.pid); got != tt.want {
			t.Errorf("VMM(%d) = %d, want %d", tt.pid, got, tt.want)
		}
	}
	for _, p := range table {
		if p.PID == 301 && (p.Comm != "a) b" || p.PPID != 300) {
			t.Errorf("Table() read pid 301 as %+v, want comm %q ppid 300", p, "a) b")
		}
	}
}

func TestRSS(t *testing.T) {
	root := fakeProc(t, []Proc{{PID: 42, PPID: 1, Comm: "qemu"}})
	got, err := RSS(root, 42)
	if err != nil || got != 42<<10 {
		t.Errorf("RSS(42) = %d, %v, want %d", got, err, 42<<10)
	}
	if _, err := RSS(root, 43); err == nil {
		t.Errorf("RSS(43) of a missing process = nil error, want one")
	}
	// The real /proc: this process has a resident set.
	if n, err := RSS("/proc", os.Getpid()); err != nil || n <= 0 {
		t.Errorf("RSS(self) = %d, %v, want > 0", n, err)
	}
}
