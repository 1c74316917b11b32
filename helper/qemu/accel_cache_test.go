package qemu

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
)

// fakeProbe stands in for ProbeKVM: it counts its calls and fails while
// err is set, so the cache is tested the same on hosts with and without KVM.
type fakeProbe struct {
	calls int
	err   error
}

func (p *fakeProbe) probe(string) error { p.calls++; return p.err }

// TestPickAccelCached walks one cache through the cases that must probe
// (first pick, a changed QEMU binary, a damaged entry, no cache dir) and
// those that must not (a cached verdict, a forced accelerator).
func TestPickAccelCached(t *testing.T) {
	t.Setenv(AccelEnv, "")
	qemu := filepath.Join(t.TempDir(), "qemu")
	if err := os.WriteFile(qemu, []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	p := &fakeProbe{err: errors.New("kvm probe: failed to set MSR 0x10a")}
	steps := []struct {
		name       string
		before     func() // changes the world before the pick
		want       string // accelerator asked for
		cacheDir   string
		wantAccel  string
		wantReason string // prefix
		wantCalls  int    // probes so far
	}{
		{"first pick probes", nil, "", cache, "tcg", "kvm probe: failed to set MSR", 1},
		{"second pick is cached", nil, "", cache, "tcg", "cached probe: kvm probe: failed to set MSR", 1},
		{"changed QEMU probes again", func() {
			os.WriteFile(qemu, []byte("v2, longer"), 0o755)
			p.err = nil
		}, "", cache, "kvm", "/dev/kvm runs a guest", 2},
		{"new verdict is cached", nil, "", cache, "kvm", "cached probe: /dev/kvm runs a guest", 2},
		{"damaged entry probes again", func() {
			ents, _ := filepath.Glob(filepath.Join(cache, "accel-*"))
			for _, e := range ents {
				os.WriteFile(e, []byte("garbage"), 0o644)
			}
		}, "", cache, "kvm", "/dev/kvm runs a guest", 3},
		{"forced accelerator never probes", nil, "tcg", cache, "tcg", "asked for", 3},
		{"no cache dir probes every time", nil, "", "", "kvm", "/dev/kvm runs a guest", 4},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		accel, reason := pickAccelCached(st.want, qemu, st.cacheDir, p.probe)
		if accel != st.wantAccel || !strings.HasPrefix(reason, st.wantReason) || p.calls != st.wantCalls {
			t.Errorf("%s: pick = %s, %q after %d probes; want %s, %q..., %d probes",
				st.name, accel, reason, p.calls, st.wantAccel, st.wantReason, st.wantCalls)
		}
	}
	// $LOFTD_QEMU_ACCEL bypasses probe and cache alike.
	t.Setenv(AccelEnv, "tcg")
	if accel, reason := pickAccelCached("", qemu, cache, p.probe); accel != "tcg" || p.calls != 4 {
		t.Errorf("with %s=tcg: pick = %s, %q after %d probes; want tcg without a probe", AccelEnv, accel, reason, p.calls)
	}
}

// BenchmarkPickAccel compares the per-run cost of the KVM probe with the
// cached verdict, against the real QEMU.
func BenchmarkPickAccel(b *testing.B) {
	qemu := testenv.RequireCommand(b, "qemu-system-x86_64", "qemu-system-x86")
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
