package disks

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

func TestParseProcLocks(t *testing.T) {
	in := `1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF
2: FLOCK  ADVISORY  READ 1235 fd:01:42 0 EOF
2: -> FLOCK  ADVISORY  WRITE 1236 fd:01:42 0 EOF
3: POSIX  ADVISORY  WRITE 99 08:01:7 0 EOF
4: OFDLCK ADVISORY  READ -1 08:01:8 0 EOF
5: FLOCK  ADVISORY  READ 0 103:02:18446744073709551615 0 EOF
`
	want := []procLock{
		{pid: 1234, major: 0, minor: 0x2a, ino: 5678, exclusive: true},
		{pid: 1235, major: 0xfd, minor: 1, ino: 42},
		{pid: 0, major: 0x103, minor: 2, ino: 18446744073709551615},
	}
	got, err := parseProcLocks(strings.NewReader(in))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseProcLocks() = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{
		"1: FLOCK  ADVISORY  WRITE x 00:2a:5678 0 EOF\n",
		"1: FLOCK  ADVISORY  WRITE 1 00:2a 0 EOF\n",
		"1: FLOCK  ADVISORY  WRITE 1 zz:2a:1 0 EOF\n",
	} {
		if got, err := parseProcLocks(strings.NewReader(bad)); err == nil {
			t.Errorf("parseProcLocks(%q) = %+v, nil; want an error", bad, got)
		}
	}
}

// Two locks in one process are two open file descriptions, so they
// conflict like two processes would.
func TestLockModes(t *testing.T) {
	tests := []struct {
		first, second bool // exclusive?
		conflict      bool
	}{
		{false, false, false},
		{false, true, true},
		{true, false, true},
		{true, true, true},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("exclusive %v then %v", tt.first, tt.second)
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "lock")
			a, err := Lock(p, tt.first)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := Lock(p, tt.second)
			if !tt.conflict {
				if err != nil {
					t.Fatalf("Lock(%q, %v) = %v, want nil", p, tt.second, err)
				}
				b.Close()
				return
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("Lock(%q, %v) = %v, want %v", p, tt.second, err, ErrLocked)
			}
			if want := fmt.Sprintf("pid %d ", os.Getpid()); !strings.Contains(err.Error(), want) {
				t.Errorf("Lock error %q does not name this process (%s)", err, want)
			}
			a.Close()
			b, err = Lock(p, tt.second)
			if err != nil {
				t.Fatalf("Lock(%q, %v) after release = %v, want nil", p, tt.second, err)
			}
			b.Close()
		})
	}
}

// The holder is another process: the refusal names its pid and command.
func TestLockNamesHolder(t *testing.T) {
	testLockNamesHolder(t, t.TempDir())
}

// On btrfs, and on a btrfs subvolume, stat's device differs from the one
// /proc/locks prints; the holder must still be found. Needs root (through
// testenv, so CI cannot quietly test the temporary directory only).
func TestLockNamesHolderOnBtrfs(t *testing.T) {
	testenv.RequireRoot(t)
	// Our own disk rather than testenv.Btrfs: this package makes disks.
	mnt := testenv.Loop(t, newDisk(t, GiB))
	btrfs := testenv.RequireCommand(t, "btrfs", "btrfs-progs")
	sub := filepath.Join(mnt, "subvol")
	if out, err := exec.Command(btrfs, "subvolume", "create", sub).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
	}
	for where, dir := range map[string]string{"btrfs": mnt, "btrfs subvolume": sub} {
		t.Run(where, func(t *testing.T) { testLockNamesHolder(t, dir) })
	}
}

func testLockNamesHolder(t *testing.T, dir string) {
	for _, holderExclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("holder exclusive %v", holderExclusive), func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("lock-%v", holderExclusive))
			pid, release := startLockHolder(t, p, holderExclusive)
			_, err := Lock(p, true)
			var le *LockedError
			if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
				t.Fatalf("Lock(%q, true) = %v, want a *LockedError", p, err)
			}
			want := []Holder{{Pid: pid, Cmdline: fmt.Sprintf("%s hold-lock %s %s", os.Args[0], p, map[bool]string{false: "shared", true: "exclusive"}[holderExclusive]), Exclusive: holderExclusive}}
			if !reflect.DeepEqual(le.Holders, want) {
				t.Errorf("holders = %+v, want %+v", le.Holders, want)
			}
			msg := fmt.Sprintf("workspace lock %s is held by pid %d (%s); wait for it to finish or stop it", p, pid, want[0].Cmdline)
			if err.Error() != msg {
				t.Errorf("Lock error = %q, want %q", err, msg)
			}
			// A shared holder admits other shared holders (VMs of one
			// workspace share it with nothing but themselves: the
			// host keeps a second session from attaching the disks).
			if s, err := Lock(p, false); (err == nil) == holderExclusive {
				t.Errorf("Lock(%q, false) while held exclusive=%v: %v", p, holderExclusive, err)
			} else if s != nil {
				s.Close()
			}
			release()
			l, err := Lock(p, true)
			if err != nil {
				t.Fatalf("Lock(%q, true) after the holder exited = %v", p, err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("Close() = %v", err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close() = %v, want nil", err)
			}
		})
	}
}

func TestLockedErrorWithoutHolders(t *testing.T) {
	err := &LockedError{Path: "/x/lock", LookupErr: errors.New("no /proc")}
	want := "workspace lock /x/lock is held by another process (cannot tell which: no /proc); wait for it to finish or stop it"
	if err.Error() != want || !errors.Is(err, ErrLocked) {
		t.Errorf("LockedError = %q (Is ErrLocked: %v), want %q", err, errors.Is(err, ErrLocked), want)
	}
	multi := &LockedError{Path: "/x/lock", Holders: []Holder{{Pid: 1, Cmdline: "loftd -- make"}, {Pid: 2}}}
	want = "workspace lock /x/lock is held by pid 1 (loftd -- make), pid 2; wait for it to finish or stop it"
	if multi.Error() != want {
		t.Errorf("LockedError = %q, want %q", multi, want)
	}
}

// On btrfs the first file of every subvolume has inode 257, and /proc/locks
// shows one device for the whole filesystem: a lock on another subvolume's
// file looks identical there, and must not be blamed.
func TestLockHolderNotConfusedAcrossSubvolumes(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := testenv.Loop(t, newDisk(t, GiB))
	btrfs := testenv.RequireCommand(t, "btrfs", "btrfs-progs")
	var locks []string
	for _, name := range []string{"a", "b"} {
		sub := filepath.Join(mnt, name)
		if out, err := exec.Command(btrfs, "subvolume", "create", sub).CombinedOutput(); err != nil {
			t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
		}
		locks = append(locks, filepath.Join(sub, "lock"))
	}
	pidA, _ := startLockHolder(t, locks[0], true)
	pidB, _ := startLockHolder(t, locks[1], true)
	a, _ := os.Stat(locks[0])
	b, _ := os.Stat(locks[1])
	if ia, ib := a.Sys().(*syscall.Stat_t).Ino, b.Sys().(*syscall.Stat_t).Ino; ia != ib {
		t.Fatalf("inodes %d and %d differ: the test needs them equal", ia, ib)
	}
	_, err := Lock(locks[1], false)
	var le *LockedError
	if !errors.As(err, &le) || len(le.Holders) != 1 || le.Holders[0].Pid != pidB {
		t.Errorf("Lock(%q) = %v, want it held by pid %d only (not %d)", locks[1], err, pidB, pidA)
	}
}
