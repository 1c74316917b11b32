package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeQEMU writes a QEMU stand-in (a script) whose KVM start either works
// or aborts, and counts its starts in a file.
func fakeQEMU(t *testing.T, works bool) (path, counter string) {
	t.Helper()
	dir := t.TempDir()
	path, counter = filepath.Join(dir, "qemu"), filepath.Join(dir, "starts")
	exit := "exit 0"
	if !works {
		exit = "echo 'kvm_buf_set_msrs: Assertion failed' >&2; exit 134"
	}
	script := "#!/bin/sh\necho x >> " + counter + "\ncat >/dev/null\n" + exit + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, counter
}

func starts(t *testing.T, counter string) int {
	data, _ := os.ReadFile(counter)
	return strings.Count(string(data), "x")
}

func TestPickAccelCached(t *testing.T) {
	t.Setenv(AccelEnv, "")
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm: the probe never starts QEMU, so there is nothing to cache")
	}
	if err := probeKVM(); err != nil {
		t.Skipf("/dev/kvm cannot run the one-instruction guest (%v): QEMU is never started", err)
	}
	qemu, counter := fakeQEMU(t, false)
	cache := t.TempDir()
	a1, why1 := PickAccelCached("", qemu, cache)
	a2, why2 := PickAccelCached("", qemu, cache)
	if a1 != "tcg" || a2 != "tcg" || !strings.HasPrefix(why2, "cached probe: ") {
		t.Errorf("PickAccelCached twice = (%s, %q), (%s, %q); want tcg both times, the second from the cache", a1, why1, a2, why2)
	}
	if n := starts(t, counter); n != 1 {
		t.Errorf("QEMU started %d times for two picks, want 1 (the second is cached)", n)
	}
	// A changed QEMU binary is probed again.
	if err := os.WriteFile(qemu, []byte("#!/bin/sh\necho x >> "+counter+"\ncat >/dev/null\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if a, _ := PickAccelCached("", qemu, cache); a != "kvm" || starts(t, counter) != 2 {
		t.Errorf("after QEMU changed: accel %s, %d starts; want kvm after a new probe", a, starts(t, counter))
	}
	// A forced accelerator never probes nor reads the cache.
	if a, why := PickAccelCached("tcg", qemu, cache); a != "tcg" || why != "asked for" || starts(t, counter) != 2 {
		t.Errorf("PickAccelCached(tcg) = %s, %q, %d starts", a, why, starts(t, counter))
	}
}

// BenchmarkPickAccel compares the per-run cost of the KVM probe with the
// cached verdict, against the real QEMU.
func BenchmarkPickAccel(b *testing.B) {
	qemu, err := FindQEMU("")
	if err != nil {
		b.Skip(err)
	}
	b.Setenv(AccelEnv, "")
	b.Run("probe", func(b *testing.B) {
		for b.Loop() {
			PickAccel("", qemu)
		}
	})
	b.Run("cached", func(b *testing.B) {
		cache := b.TempDir()
		for b.Loop() {
			PickAccelCached("", qemu, cache)
		}
	})
}
