package qemu

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// PickAccelCached is PickAccel with the probe's verdict remembered in
// cacheDir. The probe starts a QEMU (tens of milliseconds) and its answer
// only changes with the QEMU binary, the host kernel or /dev/kvm, so the
// cache key is made of exactly those; any of them changing probes again.
// A forced accelerator (want, $LOFTD_QEMU_ACCEL) never touches the cache.
func PickAccelCached(want, qemuPath, cacheDir string) (accel, reason string) {
	return pickAccelCached(want, qemuPath, cacheDir, ProbeKVM)
}

// pickAccelCached is PickAccelCached with the KVM probe passed in (tests
// inject one, so the cache is tested on hosts with and without KVM).
func pickAccelCached(want, qemuPath, cacheDir string, probe func(string) error) (accel, reason string) {
	if want != "" || os.Getenv(AccelEnv) != "" || cacheDir == "" {
		return pickAccel(want, qemuPath, probe)
	}
	key, ok := accelKey(qemuPath)
	if !ok {
		return pickAccel(want, qemuPath, probe)
	}
	path := filepath.Join(cacheDir, "accel-"+key)
	if data, err := os.ReadFile(path); err == nil {
		if a, why, ok := strings.Cut(string(data), "\n"); ok && (a == "kvm" || a == "tcg") {
			return a, "cached probe: " + why
		}
	}
	accel, reason = pickAccel(want, qemuPath, probe)
	if err := os.MkdirAll(cacheDir, 0o755); err == nil {
		tmp := path + ".tmp"
		if os.WriteFile(tmp, []byte(accel+"\n"+reason), 0o644) == nil && os.Rename(tmp, path) != nil {
			os.Remove(tmp)
		}
	}
	return accel, reason
}

// probeRevision is part of the cache key: a probe that learned to refuse
// more (2: a PVM /dev/kvm, internal/kvmcheck) must not be answered by the
// verdict an older probe cached.
const probeRevision = 2

// accelKey identifies what the KVM probe's verdict depends on.
func accelKey(qemuPath string) (string, bool) {
	var qst, kst unix.Stat_t
	if err := unix.Stat(qemuPath, &qst); err != nil {
		return "", false
	}
	kvm := "none"
	if unix.Stat("/dev/kvm", &kst) == nil {
		kvm = fmt.Sprintf("%d:%d", kst.Rdev, kst.Mode)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", false
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d.%d\x00%d\x00%s\x00%s\x00%d",
		qemuPath, qst.Mtim.Sec, qst.Mtim.Nsec, qst.Size, unix.ByteSliceToString(uts.Release[:]), kvm, probeRevision))
	return hex.EncodeToString(sum[:8]), true
}
