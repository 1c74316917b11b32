package qemu_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/containers/storage/pkg/reexec"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/libkrun/krunfw"
)

// guest is a root filesystem built once per test binary from busybox-static
// and the guest init (built CGO_ENABLED=0), shared by every VM test: the
// tests run one VM at a time and each rewrites /.krun_config.json.
type guest struct {
	vm     testenv.VM
	root   string
	kernel string
	out    []byte // 1 MiB the guest copies to stdout
	errb   []byte // 1 MiB the guest copies to stderr
}

var (
	guestOnce sync.Once
	shared    *guest
	sharedErr error
	tmpBase   string
)

func TestMain(m *testing.M) {
	// Each share's virtiofsd starts through the wrapper, this binary
	// re-executed (virtiofs.WrapperName).
	if reexec.Init() {
		return
	}
	code := m.Run()
	if tmpBase != "" {
		os.RemoveAll(tmpBase)
	}
	os.Exit(code)
}

func setup(t testing.TB) *guest {
	t.Helper()
	vm := testenv.RequireVM(t)
	busybox := testenv.Busybox(t)
	guestOnce.Do(func() { shared, sharedErr = buildGuest(vm, busybox) })
	if sharedErr != nil {
		t.Fatalf("build guest rootfs: %v", sharedErr)
	}
	return shared
}

func buildGuest(vm testenv.VM, busybox string) (*guest, error) {
	var err error
	if tmpBase, err = os.MkdirTemp("", "loftd-qemu-test-"); err != nil {
		return nil, err
	}
	g := &guest{vm: vm, root: filepath.Join(tmpBase, "root")}
	if err := testenv.WriteBusyboxRoot(busybox, g.root); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(g.root, ".loftd"), 0o755); err != nil {
		return nil, err
	}
	if err := testenv.BuildGuestInit(filepath.Join(g.root, contract.GuestInitPath)); err != nil {
		return nil, err
	}
	g.out, g.errb = random(1<<20), random(1<<20)
	for name, data := range map[string][]byte{"out.bin": g.out, "err.bin": g.errb, "notexec": []byte("#!/bin/sh\n")} {
		if err := os.WriteFile(filepath.Join(g.root, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	if g.kernel, err = krunfw.KernelELF(vm.Krunfw, filepath.Join(tmpBase, "kernel")); err != nil {
		return nil, err
	}
	return g, nil
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("stdout closed") }

type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	ch   chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.ch) })
	}
	return len(b), nil
}

// pidsMentioning lists live processes whose command line contains one of
// the strings, or that hold a file whose path does
// (zombies excluded: they have an empty cmdline and no fds).
func pidsMentioning(subs ...string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if mentions(cmdline, subs) || holdsFileUnder(pid, subs) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func mentions(b []byte, subs []string) bool {
	for _, s := range subs {
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// holdsFileUnder: QEMU names no host path in its arguments (it gets its
// console log and disks as fds), so it is found by its open files.
func holdsFileUnder(pid int, subs []string) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, _ := os.ReadDir(dir)
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && mentions([]byte(target), subs) {
			return true
		}
	}
	return false
}

// virtiofsdChildren are this process's virtiofsd children, oldest first
// (the root's is started first). Their command lines name no path of the
// run: each gets its directory as an fd (virtiofs.FDPath).
func virtiofsdChildren() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("virtiofsd")) {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after ')'.
		var state string
		var ppid int
		if i := bytes.LastIndexByte(stat, ')'); i < 0 {
			continue
		} else if _, err := fmt.Sscanf(string(stat[i+1:]), " %s %d", &state, &ppid); err != nil || ppid != os.Getpid() {
			continue
		}
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}
