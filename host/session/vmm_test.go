package session

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun"
	"github.com/loftd/loftd/libkrun/krundouble"
)

// fakeKVM makes KVM usable, or not with err.
func fakeKVM(t *testing.T, err error) {
	old := kvmUsable
	t.Cleanup(func() { kvmUsable = old })
	kvmUsable = func() error { return err }
}

// fakeKrunfw makes the loader "find" only the given libkrunfw sonames.
func fakeKrunfw(t *testing.T, found ...string) {
	old := krunfwLoadable
	t.Cleanup(func() { krunfwLoadable = old })
	krunfwLoadable = func(_, soname string) (string, error) {
		for _, f := range found {
			if f == soname {
				return "/usr/lib64/" + soname + ".5.0", nil
			}
		}
		return "", errors.New("the dynamic loader does not find " + soname)
	}
}

// TestPickVMMKrun: auto picks krun only when libkrun can run a session here
// (release 1.17+ for network none, its libkrunfw found by soname, KVM
// usable); else it falls back to QEMU saying why, and --vmm krun fails
// saying why.
func TestPickVMMKrun(t *testing.T) {
	vm := testenv.RequireVM(t) // QEMU, virtiofsd and libkrunfw for the fallback
	t.Setenv("LOFTD_LIBKRUNFW_LIBRARY", vm.Krunfw)
	tests := []struct {
		name    string
		minor   int        // the libkrun release the double plays
		krunfw  []string   // sonames the loader finds
		noKVM   bool       // KVM is not usable
		want    launch.VMM // for auto
		wantWhy string     // in auto's why, or in --vmm krun's error
	}{
		{"1.19 with libkrunfw.so.5", 19, []string{"libkrunfw.so.5"}, false, "krun", "finds its libkrunfw and KVM works"},
		{"1.19 without KVM", 19, []string{"libkrunfw.so.5"}, true, "qemu", "libkrun needs KVM"},
		{"1.19 with only libkrunfw.so.4", 19, []string{"libkrunfw.so.4"}, false, "qemu", "does not find libkrunfw.so.5"},
		{"1.19 without libkrunfw", 19, nil, false, "qemu", "does not find libkrunfw.so.5"},
		{"1.16: no network none", 16, []string{"libkrunfw.so.4", "libkrunfw.so.5"}, false, "qemu", "needs libkrun >= 1.17 (krun_disable_implicit_vsock)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(libkrun.LibraryEnv, krundouble.Build(t, krundouble.HideBefore(tt.minor)...))
			fakeKrunfw(t, tt.krunfw...)
			var kvmErr error
			if tt.noKVM {
				kvmErr = kvmError("no /dev/kvm")
			}
			fakeKVM(t, kvmErr)
			got, why, err := pickVMM("auto")
			if err != nil || got.name != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("pickVMM(auto) = %+v, %q, %v, want %s because %q", got, why, err, tt.want, tt.wantWhy)
			}
			got, _, err = pickVMM("krun")
			if tt.want == launch.VMMKrun {
				if err != nil || got.name != "krun" {
					t.Errorf("pickVMM(krun) = %+v, %v, want krun", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "--vmm krun: ") || !strings.Contains(err.Error(), tt.wantWhy) {
				t.Errorf("pickVMM(krun) = %v, want an error containing %q", err, tt.wantWhy)
			}
		})
	}
}

// TestDescribeLibkrun is what doctor shows: path and the rule that found it, release, features, the
// libkrunfw soname and file, and why krun cannot run when it cannot.
func TestDescribeLibkrun(t *testing.T) {
	tests := []struct {
		minor int
		want  []string
	}{
		{19, []string{
			"libkrun: DOUBLE (env LOFTD_LIBKRUN_LIBRARY), version 1.19 or newer",
			"libkrun features: NET, BLK",
			"libkrunfw: libkrunfw.so.5 → /usr/lib64/libkrunfw.so.5.5.0",
		}},
		{16, []string{
			"libkrun: DOUBLE (env LOFTD_LIBKRUN_LIBRARY), version 1.16 or newer",
			"libkrun features: unknown (krun_has_feature is 1.18+)",
			"libkrunfw: libkrunfw.so.4 (not found)",
			"libkrun lacks: krun_has_feature, krun_disable_implicit_vsock, krun_add_vsock, krun_add_virtio_console_multiport, krun_add_console_port_inout, krun_fs_add_overlay_file, krun_add_virtiofs3",
			"libkrun cannot run sessions: libkrun DOUBLE is 1.16 or older: a guest without network needs libkrun >= 1.17 (krun_disable_implicit_vsock)",
		}},
	}
	for _, tt := range tests {
		lib := krundouble.Build(t, krundouble.HideBefore(tt.minor)...)
		t.Setenv(libkrun.LibraryEnv, lib)
		fakeKrunfw(t, "libkrunfw.so.5")
		fakeKVM(t, nil)
		got := DescribeLibkrun().Lines()
		for i := range got {
			got[i] = strings.ReplaceAll(got[i], lib, "DOUBLE")
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DescribeLibkrun() of 1.%d =\n%s\nwant\n%s", tt.minor, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
	// The real check's words, on a machine without KVM.
	lib := krundouble.Build(t)
	t.Setenv(libkrun.LibraryEnv, lib)
	fakeKVM(t, kvmError("open /dev/kvm: no such file or directory"))
	if got := DescribeLibkrun().Lines(); !strings.Contains(got[len(got)-1], "libkrun cannot run sessions: libkrun needs KVM") {
		t.Errorf("DescribeLibkrun() without KVM ends %q, want it to name KVM", got[len(got)-1])
	}
	t.Setenv(libkrun.LibraryEnv, "/nonexistent/libkrun.so.1")
	if got := DescribeLibkrun().Lines(); len(got) != 1 || !strings.HasPrefix(got[0], "libkrun: load libkrun: /nonexistent/libkrun.so.1") {
		t.Errorf("DescribeLibkrun() without libkrun = %q, want the load error", got)
	}
}

// kvmError is libkrun.CheckKVM's error for a cause.
func kvmError(cause string) error {
	return fmt.Errorf("%w: %s", libkrun.ErrNoKVM, cause)
}

// TestDescribeRealLibkrun is doctor's libkrun report on the real library
// scripts/fetch-libkrun builds: its path, release 1.19, the features it
// was built with (blk, net), the libkrunfw it finds next to itself through
// its RUNPATH, and whether KVM lets it run here.
func TestDescribeRealLibkrun(t *testing.T) {
	lib := testenv.RequireLibkrun(t)
	t.Setenv(libkrun.LibraryEnv, lib)
	r := DescribeLibkrun()
	if r.Path != lib || r.Version != "1.19" {
		t.Fatalf("DescribeLibkrun() = %+v, want %s at release 1.19", r, lib)
	}
	for _, f := range []string{"NET", "BLK"} {
		if !slices.Contains(r.Features, f) {
			t.Errorf("features = %q, want %s (scripts/fetch-libkrun builds blk,net)", r.Features, f)
		}
	}
	fw := filepath.Join(filepath.Dir(lib), "libkrunfw.so.5")
	if want := "libkrunfw.so.5 → " + fw; r.Krunfw != want {
		t.Errorf("libkrunfw = %q, want %q (next to libkrun, by its RUNPATH)", r.Krunfw, want)
	}
	if kvmErr := libkrun.CheckKVM(); (kvmErr == nil) != (r.Err == nil) {
		t.Errorf("DescribeLibkrun().Err = %v with CheckKVM() = %v: the report must follow KVM", r.Err, kvmErr)
	}
}
