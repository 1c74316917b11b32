package libkrun

import (
	"runtime"
)

// The calls of libkrun releases after MinVersion. Each is optional: its
// method returns an error saying so when the library lacks it.

// Feature is libkrun's KRUN_FEATURE_*: a cargo feature the library was built
// with (include/libkrun.h, lib.rs v1.19.0:1933-1944).
type Feature uint64

// libkrun's features.
const (
	FeatureNet Feature = iota
	FeatureBlk
	FeatureGPU
	FeatureSnd
	FeatureInput
	FeatureEFI
	FeatureTEE
	FeatureAMDSEV
	FeatureIntelTDX
	FeatureAWSNitro
	FeatureVirglResourceMap2
	FeatureInitBlob
)

// Features names every Feature, for `loftd doctor`.
var Features = []struct {
	Feature Feature
	Name    string
}{
	{FeatureNet, "NET"}, {FeatureBlk, "BLK"}, {FeatureGPU, "GPU"}, {FeatureSnd, "SND"},
	{FeatureInput, "INPUT"}, {FeatureEFI, "EFI"}, {FeatureTEE, "TEE"}, {FeatureAMDSEV, "AMD_SEV"},
	{FeatureIntelTDX, "INTEL_TDX"}, {FeatureAWSNitro, "AWS_NITRO"},
	{FeatureVirglResourceMap2, "VIRGL_RESOURCE_MAP2"}, {FeatureInitBlob, "INIT_BLOB"},
}

// HasFeature calls krun_has_feature (optional, 1.18): whether libkrun was
// built with f. An f this libkrun does not know is EINVAL.
func (l *Lib) HasFeature(f Feature) (bool, error) {
	const op = "krun_has_feature"
	if l.hasFeature == nil {
		return false, l.errMissing(op)
	}
	ret := l.hasFeature(uint64(f))
	if err := check(op, ret); err != nil {
		return false, err
	}
	return ret == 1, nil
}

// MaxVCPUs calls krun_get_max_vcpus (optional, 1.16): the most vCPUs KVM
// creates on this host (lib.rs v1.19.0:1973-1997; EINVAL without /dev/kvm).
func (l *Lib) MaxVCPUs() (int, error) {
	const op = "krun_get_max_vcpus"
	if l.getMaxVCPUs == nil {
		return 0, l.errMissing(op)
	}
	ret := l.getMaxVCPUs()
	if err := check(op, ret); err != nil {
		return 0, err
	}
	return int(ret), nil
}

// DisableImplicitVsock calls krun_disable_implicit_vsock (optional, 1.17):
// no vsock device, hence no TSI, unless AddVsock adds one explicitly. After
// it, krun_set_port_map and krun_add_vsock_port2 fail with ENODEV (lib.rs
// v1.19.0:1288, 1515).
func (l *Lib) DisableImplicitVsock(ctx Ctx) error {
	const op = "krun_disable_implicit_vsock"
	if l.disableImplicitVsock == nil {
		return l.errMissing(op)
	}
	return check(op, l.disableImplicitVsock(uint32(ctx)))
}

// TSI flags of AddVsock (include/libkrun.h: KRUN_TSI_HIJACK_*).
const (
	TSIHijackInet = 1 << 0
	TSIHijackUnix = 1 << 1
)

// AddVsock calls krun_add_vsock (optional, 1.17): an explicit vsock device
// with these TSI flags (0: vsock ports only, no TSI). It must follow
// DisableImplicitVsock, else EEXIST (lib.rs v1.19.0:2634-2636).
func (l *Lib) AddVsock(ctx Ctx, tsiFlags uint32) error {
	const op = "krun_add_vsock"
	if l.addVsock == nil {
		return l.errMissing(op)
	}
	return check(op, l.addVsock(uint32(ctx), tsiFlags))
}

// AddVirtioConsoleMultiport calls krun_add_virtio_console_multiport
// (optional, 1.17): a virtio-console without ports; its ID is for
// AddConsolePortInout.
func (l *Lib) AddVirtioConsoleMultiport(ctx Ctx) (uint32, error) {
	const op = "krun_add_virtio_console_multiport"
	if l.addVirtioConsoleMulti == nil {
		return 0, l.errMissing(op)
	}
	ret := l.addVirtioConsoleMulti(uint32(ctx))
	if err := check(op, ret); err != nil {
		return 0, err
	}
	return uint32(ret), nil
}

// AddConsolePortInout calls krun_add_console_port_inout (optional, 1.17): a
// port named name on console (from AddVirtioConsoleMultiport) reading in and
// writing out.
func (l *Lib) AddConsolePortInout(ctx Ctx, console uint32, name string, in, out int) error {
	const op = "krun_add_console_port_inout"
	if l.addConsolePortInout == nil {
		return l.errMissing(op)
	}
	n, err := cString(op, name)
	if err != nil {
		return err
	}
	ret := l.addConsolePortInout(uint32(ctx), console, n, int32(in), int32(out))
	runtime.KeepAlive(n)
	return check(op, ret)
}

// FsAddOverlayFile calls krun_fs_add_overlay_file (optional, 1.19): the
// virtiofs share tagged tag shows data as the file path (mode), without
// touching the directory behind the share; oneShot removes it after the
// first open. libkrun reads data until the VM ends (lib.rs v1.19.0:2504),
// so the Lib keeps a copy for as long as it lives.
func (l *Lib) FsAddOverlayFile(ctx Ctx, tag, path string, data []byte, mode uint32, oneShot bool) error {
	const op = "krun_fs_add_overlay_file"
	if l.fsAddOverlayFile == nil {
		return l.errMissing(op)
	}
	t, err := cString(op, tag)
	if err != nil {
		return err
	}
	p, err := cString(op, path)
	if err != nil {
		return err
	}
	var d *byte
	if len(data) > 0 {
		kept := append([]byte(nil), data...)
		l.keep = append(l.keep, kept)
		d = &kept[0]
	}
	ret := l.fsAddOverlayFile(uint32(ctx), t, p, d, uintptr(len(data)), mode, oneShot)
	runtime.KeepAlive(t)
	runtime.KeepAlive(p)
	return check(op, ret)
}

// AddVirtiofs3 calls krun_add_virtiofs3 (optional, 1.19): krun_add_virtiofs
// with a DAX window of shmSize bytes (0: none) and, with readOnly, a share
// libkrun's own virtiofs server refuses to write (lib.rs v1.19.0:668).
func (l *Lib) AddVirtiofs3(ctx Ctx, tag, path string, shmSize uint64, readOnly bool) error {
	const op = "krun_add_virtiofs3"
	if l.addVirtiofs3 == nil {
		return l.errMissing(op)
	}
	t, err := cString(op, tag)
	if err != nil {
		return err
	}
	p, err := cString(op, path)
	if err != nil {
		return err
	}
	ret := l.addVirtiofs3(uint32(ctx), t, p, shmSize, readOnly)
	runtime.KeepAlive(t)
	runtime.KeepAlive(p)
	return check(op, ret)
}
