package libkrun

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/ebitengine/purego"
)

// One method per krun_* call, with the argument types of include/libkrun.h.
// C strings and string arrays are built in Go memory for each call and kept
// alive across it; libkrun copies what it keeps.

// Ctx is a libkrun configuration context ID.
type Ctx uint32

// LogLevel is libkrun's KRUN_LOG_LEVEL_*.
type LogLevel uint32

// libkrun's log levels.
const (
	LogOff LogLevel = iota
	LogError
	LogWarn
	LogInfo
	LogDebug
	LogTrace
)

// LogStyle is libkrun's KRUN_LOG_STYLE_*.
type LogStyle uint32

// libkrun's log styles (terminal escape sequences).
const (
	LogStyleAuto LogStyle = iota
	LogStyleAlways
	LogStyleNever
)

// LogTargetDefault makes InitLog write to libkrun's default target (stderr).
const LogTargetDefault = -1

// LogOptionNoEnv stops environment variables from overriding InitLog's settings.
const LogOptionNoEnv = 1

// libkrun sets up its logger once per process: a second krun_set_log_level
// or krun_init_log panics inside libkrun's Rust code (env_logger's init), which
// aborts the whole process. logging remembers which loaded libraries (by
// handle, which dlopen shares between opens of one library) had theirs set.
var logging struct {
	sync.Mutex
	done map[uintptr]bool
}

// rtldNoload is glibc's RTLD_NOLOAD (purego lacks it): dlopen only finds a
// library that is already loaded.
const rtldNoload = 0x4

// forgetLogging drops a library's logging state once it is really unloaded,
// so a later load at the same handle starts fresh. dlclose only unloads at
// the last reference, and a library may refuse to unload: ask the loader.
func forgetLogging(path string, handle uintptr) {
	logging.Lock()
	defer logging.Unlock()
	if !logging.done[handle] {
		return
	}
	if h, err := purego.Dlopen(path, purego.RTLD_NOW|rtldNoload); err == nil && h != 0 {
		_ = purego.Dlclose(h) // drop the reference NOLOAD just took
		return
	}
	delete(logging.done, handle)
}

// ErrLoggingSet is why SetLogLevel or InitLog refused to call libkrun: a
// caller that only wants logging set up somehow may ignore it.
var ErrLoggingSet = errors.New("libkrun logging is already set up in this process (libkrun allows it once)")

func (l *Lib) claimLogging(op string) error {
	logging.Lock()
	defer logging.Unlock()
	if logging.done[l.handle] {
		return fmt.Errorf("%s: %w", op, ErrLoggingSet)
	}
	if logging.done == nil {
		logging.done = make(map[uintptr]bool)
	}
	logging.done[l.handle] = true
	return nil
}

// SetLogLevel calls krun_set_log_level, which sets up libkrun's logger for
// the whole process. It works once per process (shared with InitLog).
func (l *Lib) SetLogLevel(level LogLevel) error {
	const op = "krun_set_log_level"
	if err := l.claimLogging(op); err != nil {
		return err
	}
	return check(op, l.setLogLevel(uint32(level)))
}

// InitLog calls krun_init_log (optional): log to fd, or LogTargetDefault.
// It works once per process (shared with SetLogLevel).
func (l *Lib) InitLog(fd int, level LogLevel, style LogStyle, options uint32) error {
	const op = "krun_init_log"
	if l.initLog == nil {
		return l.errMissing(op)
	}
	if err := l.claimLogging(op); err != nil {
		return err
	}
	return check(op, l.initLog(int32(fd), uint32(level), uint32(style), options))
}

// CreateCtx calls krun_create_ctx.
func (l *Lib) CreateCtx() (Ctx, error) {
	ret := l.createCtx()
	if err := check("krun_create_ctx", ret); err != nil {
		return 0, err
	}
	return Ctx(ret), nil
}

// FreeCtx calls krun_free_ctx.
func (l *Lib) FreeCtx(ctx Ctx) error {
	return check("krun_free_ctx", l.freeCtx(uint32(ctx)))
}

// SetVMConfig calls krun_set_vm_config.
func (l *Lib) SetVMConfig(ctx Ctx, vcpus uint8, ramMiB uint32) error {
	return check("krun_set_vm_config", l.setVMConfig(uint32(ctx), vcpus, ramMiB))
}

// CheckNestedVirt calls krun_check_nested_virt (optional): whether the host
// supports nested virtualization. libkrun before 1.18 answers EOPNOTSUPP on
// Linux.
func (l *Lib) CheckNestedVirt() (bool, error) {
	if l.checkNestedVirt == nil {
		return false, l.errMissing("krun_check_nested_virt")
	}
	ret := l.checkNestedVirt()
	if err := check("krun_check_nested_virt", ret); err != nil {
		return false, err
	}
	return ret == 1, nil
}

// SetNestedVirt calls krun_set_nested_virt (optional). libkrun before 1.18
// rejects enabled=true on Linux with EINVAL.
func (l *Lib) SetNestedVirt(ctx Ctx, enabled bool) error {
	if l.setNestedVirt == nil {
		return l.errMissing("krun_set_nested_virt")
	}
	return check("krun_set_nested_virt", l.setNestedVirt(uint32(ctx), enabled))
}

// SetRoot calls krun_set_root: the host directory shared as the guest's root
// (virtiofs tag "/dev/root").
func (l *Lib) SetRoot(ctx Ctx, path string) error {
	const op = "krun_set_root"
	p, err := cString(op, path)
	if err != nil {
		return err
	}
	ret := l.setRoot(uint32(ctx), p)
	runtime.KeepAlive(p)
	return check(op, ret)
}

// AddDisk calls krun_add_disk: a raw image as a virtio-blk device.
func (l *Lib) AddDisk(ctx Ctx, blockID, path string, readOnly bool) error {
	const op = "krun_add_disk"
	id, err := cString(op, blockID)
	if err != nil {
		return err
	}
	p, err := cString(op, path)
	if err != nil {
		return err
	}
	ret := l.addDisk(uint32(ctx), id, p, readOnly)
	runtime.KeepAlive(id)
	runtime.KeepAlive(p)
	return check(op, ret)
}

// AddVirtiofs calls krun_add_virtiofs: a host directory shared under tag.
func (l *Lib) AddVirtiofs(ctx Ctx, tag, path string) error {
	const op = "krun_add_virtiofs"
	t, err := cString(op, tag)
	if err != nil {
		return err
	}
	p, err := cString(op, path)
	if err != nil {
		return err
	}
	ret := l.addVirtiofs(uint32(ctx), t, p)
	runtime.KeepAlive(t)
	runtime.KeepAlive(p)
	return check(op, ret)
}

// Virtio-net feature bits and libkrun net flags (include/libkrun.h), for
// AddNetUnixstream.
const (
	NetFeatureCSUM      = 1 << 0
	NetFeatureGuestCSUM = 1 << 1
	NetFeatureGuestTSO4 = 1 << 7
	NetFeatureGuestTSO6 = 1 << 8
	NetFeatureGuestUFO  = 1 << 10
	NetFeatureHostTSO4  = 1 << 11
	NetFeatureHostTSO6  = 1 << 12
	NetFeatureHostUFO   = 1 << 14

	// NetFeaturesCompat is libkrun's COMPAT_NET_FEATURES.
	NetFeaturesCompat = NetFeatureCSUM | NetFeatureGuestCSUM | NetFeatureGuestTSO4 |
		NetFeatureGuestUFO | NetFeatureHostTSO4 | NetFeatureHostUFO

	NetFlagVfkit      = 1 << 0
	NetFlagDHCPClient = 1 << 1 // libkrun's init runs a DHCP client on the device
)

// AddNetUnixstream calls krun_add_net_unixstream (optional): a virtio-net
// device backed by a unixstream proxy such as passt, reached either by socket
// path (fd must be -1) or by an already connected fd (path must be "").
func (l *Lib) AddNetUnixstream(ctx Ctx, path string, fd int, mac [6]byte, features, flags uint32) error {
	const op = "krun_add_net_unixstream"
	if l.addNetUnixstream == nil {
		return l.errMissing(op)
	}
	var p *byte // NULL when connecting by fd, as libkrun requires
	if path != "" {
		var err error
		if p, err = cString(op, path); err != nil {
			return err
		}
	}
	m := new([6]byte)
	*m = mac
	ret := l.addNetUnixstream(uint32(ctx), p, int32(fd), &m[0], features, flags)
	runtime.KeepAlive(p)
	runtime.KeepAlive(m)
	return check(op, ret)
}

// SetPortMap calls krun_set_port_map with "HOST:GUEST" pairs; an empty
// slice exposes no guest port. nil is refused here: although the header
// says NULL exposes every port, libkrun reads the array without a NULL
// check and crashes (lib.rs v1.19.0:1251). libkrun refuses a port map once
// a virtio-net device was added (EINVAL, lib.rs:318, 1.15 on) and after
// DisableImplicitVsock (ENODEV, lib.rs:1288).
func (l *Lib) SetPortMap(ctx Ctx, portMap []string) error {
	const op = "krun_set_port_map"
	if portMap == nil {
		return fmt.Errorf("%s: a NULL port map crashes libkrun; pass an empty one to expose no port", op)
	}
	return l.callArray(op, ctx, portMap, l.setPortMap)
}

// AddVsockPort2 calls krun_add_vsock_port2 (optional): guest vsock port ↔
// host UNIX socket; listen means the host side initiates connections.
func (l *Lib) AddVsockPort2(ctx Ctx, port uint32, path string, listen bool) error {
	const op = "krun_add_vsock_port2"
	if l.addVsockPort2 == nil {
		return l.errMissing(op)
	}
	p, err := cString(op, path)
	if err != nil {
		return err
	}
	ret := l.addVsockPort2(uint32(ctx), port, p, listen)
	runtime.KeepAlive(p)
	return check(op, ret)
}

// DisableImplicitConsole calls krun_disable_implicit_console (optional).
func (l *Lib) DisableImplicitConsole(ctx Ctx) error {
	const op = "krun_disable_implicit_console"
	if l.disableImplicitConsole == nil {
		return l.errMissing(op)
	}
	return check(op, l.disableImplicitConsole(uint32(ctx)))
}

// AddVirtioConsoleDefault calls krun_add_virtio_console_default (optional):
// a virtio-console on these fds; non-TTY fds get krun-stdin/-stdout/-stderr
// ports that libkrun's init wires to the workload's stdio.
func (l *Lib) AddVirtioConsoleDefault(ctx Ctx, in, out, errFD int) error {
	const op = "krun_add_virtio_console_default"
	if l.addVirtioConsoleDefault == nil {
		return l.errMissing(op)
	}
	return check(op, l.addVirtioConsoleDefault(uint32(ctx), int32(in), int32(out), int32(errFD)))
}

// SetWorkdir calls krun_set_workdir (a path inside the guest root). libkrun
// passes it as KRUN_WORKDIR on the kernel command line (lib.rs v1.19.0:
// 201-206, 2883-2890), and its init chdirs there before anything of the
// guest's own runs (init.c:1495-1497).
func (l *Lib) SetWorkdir(ctx Ctx, path string) error {
	const op = "krun_set_workdir"
	p, err := cString(op, path)
	if err != nil {
		return err
	}
	ret := l.setWorkdir(uint32(ctx), p)
	runtime.KeepAlive(p)
	return check(op, ret)
}

// SetExec calls krun_set_exec. argv excludes argv[0] (libkrun's init uses
// path). A nil env passes NULL, which makes libkrun copy the calling
// process's whole environment into the guest (lib.rs v1.19.0:1407-1411):
// pass []string{} for none. Everything lands on the kernel command line:
// KRUN_INIT=path, then each env entry and each argument wrapped in '"'
// without escaping (collapse_str_array, lib.rs:1353-1365), arguments after
// " -- " (lib.rs:2881-2891), at most 4096 of each (MAX_ARGS, lib.rs:71).
// Without it libkrun's init takes Cmd, Env and WorkingDir from
// /.krun_config.json (init.c:1450-1465, 1503-1507).
func (l *Lib) SetExec(ctx Ctx, path string, argv, env []string) error {
	const op = "krun_set_exec"
	p, err := cString(op, path)
	if err != nil {
		return err
	}
	a, err := cStringArray(op, argv)
	if err != nil {
		return err
	}
	e, err := cStringArray(op, env)
	if err != nil {
		return err
	}
	ret := l.setExec(uint32(ctx), p, a, e)
	runtime.KeepAlive(p)
	runtime.KeepAlive(a)
	runtime.KeepAlive(e)
	return check(op, ret)
}

// SetEnv calls krun_set_env. As with SetExec, nil means "copy the caller's
// environment"; pass []string{} for none.
func (l *Lib) SetEnv(ctx Ctx, env []string) error {
	return l.callArray("krun_set_env", ctx, env, l.setEnv)
}

// SetRlimits calls krun_set_rlimits with "RESOURCE=SOFT:HARD" entries,
// RESOURCE being the numeric RLIMIT_* value (e.g. "7=1024:4096").
func (l *Lib) SetRlimits(ctx Ctx, rlimits []string) error {
	return l.callArray("krun_set_rlimits", ctx, rlimits, l.setRlimits)
}

// StartEnter calls krun_start_enter. On success it never returns: libkrun
// runs the VM in this process and exits it with the workload's status.
func (l *Lib) StartEnter(ctx Ctx) error {
	ret := l.startEnter(uint32(ctx))
	if err := check("krun_start_enter", ret); err != nil {
		return err
	}
	return fmt.Errorf("krun_start_enter: returned %d without running the VM", ret)
}

// callArray is the shape shared by the calls taking one char* array.
func (l *Lib) callArray(op string, ctx Ctx, ss []string, fn func(uint32, **byte) int32) error {
	arr, err := cStringArray(op, ss)
	if err != nil {
		return err
	}
	ret := fn(uint32(ctx), arr)
	runtime.KeepAlive(arr)
	return check(op, ret)
}
