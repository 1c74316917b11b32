package session

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/launch"
)

// PortMap is one validated -p/--publish value: the plan's typed publish,
// which each backend renders in its own syntax.
type PortMap = launch.Publish

const publishForms = "HOST:GUEST, IP:HOST:GUEST or ranges, each with an optional /tcp or /udp (8080:80, 8080:80/tcp, 127.0.0.1:8080:80, 8000-8010:80-90)"

// ParsePublish parses [IP:]HOST:GUEST[/tcp|/udp] where HOST and GUEST are a
// port or an equally long range.
func ParsePublish(s string) (PortMap, error) {
	bad := func(why string) (PortMap, error) {
		return PortMap{}, fmt.Errorf("--publish %q: %s; want %s", s, why, publishForms)
	}
	pm := PortMap{Proto: launch.TCP}
	spec := s
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		pm.Proto = launch.Protocol(spec[i+1:])
		spec = spec[:i]
		if pm.Proto != launch.TCP && pm.Proto != launch.UDP {
			return bad(fmt.Sprintf("protocol %q is not tcp or udp", pm.Proto))
		}
	}
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return bad("no HOST:GUEST pair")
	}
	hostPart, guest := spec[:i], spec[i+1:]
	if j := strings.LastIndex(hostPart, ":"); j >= 0 {
		ip := strings.Trim(hostPart[:j], "[]")
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return bad(fmt.Sprintf("%q is not an IP address", ip))
		}
		if addr.Zone() != "" {
			// A zone is free text that would go into passt's -t spec.
			return bad(fmt.Sprintf("%q has a zone (%%%s); publish on an address without one", ip, addr.Zone()))
		}
		// The canonical form, never the user's bytes, goes to passt.
		pm.HostIP, hostPart = addr.String(), hostPart[j+1:]
	}
	var err error
	if pm.HostFirst, pm.HostLast, err = portRange(hostPart); err != nil {
		return bad("host " + err.Error())
	}
	if pm.GuestFirst, pm.GuestLast, err = portRange(guest); err != nil {
		return bad("guest " + err.Error())
	}
	if pm.HostLast-pm.HostFirst != pm.GuestLast-pm.GuestFirst {
		return bad("host and guest ranges differ in length")
	}
	return pm, nil
}

func portRange(s string) (int, int, error) {
	a, b, isRange := strings.Cut(s, "-")
	first, err := port(a)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return first, first, nil
	}
	last, err := port(b)
	if err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, fmt.Errorf("range %q runs backwards", s)
	}
	return first, last, nil
}

func port(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return n, nil
}

// Volume is one validated -v/--volume value (or a tool-state mount).
type Volume struct {
	Source, Target string
	ReadOnly       bool
	// File: Source is a regular file, copied into the task root at Target
	// (a share is a directory; sharing the file's parent would show the
	// guest every sibling).
	File bool
	// Overlay: a tool-state directory shared read-only (ReadOnly is set),
	// which the guest overlays with a writable layer kept on the
	// workspace's nix disk (contract.Volume.Overlay).
	Overlay bool
}

// ParseVolume parses SRC:DST[:ro|:rw]; SRC becomes absolute and must exist
// (a directory, or a file), DST must be an absolute guest path outside
// the kernel's filesystems.
func ParseVolume(s string) (Volume, error) {
	parts := strings.Split(s, ":")
	bad := func(why string) (Volume, error) {
		return Volume{}, fmt.Errorf("--volume %q: %s; want SRC:DST or SRC:DST:ro (./data:/data:ro)", s, why)
	}
	if len(parts) < 2 || len(parts) > 3 {
		return bad("wrong number of fields")
	}
	v := Volume{Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			v.ReadOnly = true
		case "rw":
		default:
			return bad(fmt.Sprintf("option %q is not ro or rw", parts[2]))
		}
	}
	if v.Source == "" {
		return bad("empty source")
	}
	if err := checkGuestTarget(v.Target); err != nil {
		return bad(err.Error())
	}
	v.Target = filepath.Clean(v.Target)
	abs, err := filepath.Abs(v.Source)
	if err != nil {
		return bad(err.Error())
	}
	// Any byte goes: virtiofsd gets the directory as an fd loftd opened
	// (helper/virtiofs), never this path in its options.
	v.Source = abs
	fi, err := os.Stat(abs)
	if err != nil {
		return bad(fmt.Sprintf("source: %v", err))
	}
	switch {
	case fi.IsDir():
	case fi.Mode().IsRegular():
		v.File = true
	default:
		return bad(fmt.Sprintf("source %s is neither a directory nor a regular file", abs))
	}
	return v, nil
}

// checkVolumeTargets refuses two volumes with one guest target: the
// second mount would hide the first. (Nested targets are fine: the guest
// mounts them in the order given.)
func checkVolumeTargets(vols []Volume) error {
	seen := map[string]string{}
	for _, v := range vols {
		if prev, ok := seen[v.Target]; ok {
			return fmt.Errorf("--volume %s:%s and %s:%s: one guest target for two volumes; give each its own", prev, v.Target, v.Source, v.Target)
		}
		seen[v.Target] = v.Source
	}
	return nil
}

// checkGuestTarget refuses a guest path a share must not cover.
func checkGuestTarget(dst string) error {
	if !filepath.IsAbs(dst) {
		return fmt.Errorf("target %q is not an absolute guest path", dst)
	}
	clean := filepath.Clean(dst)
	if clean == "/" {
		return fmt.Errorf("target / would hide the guest's root")
	}
	// The workspace is the project's own share: a volume at /workspace
	// would hide it, and one below it would hide part of it and make its
	// mount point in the user's project on the host.
	if within(contract.WorkspaceMount, clean) {
		return fmt.Errorf("target %s is the workspace (%s) or inside it; mount the volume elsewhere (/mnt/NAME)", clean, contract.WorkspaceMount)
	}
	for _, k := range []string{"/proc", "/sys", "/dev"} {
		if within(k, clean) {
			return fmt.Errorf("target %s is under %s, which the guest kernel owns", clean, k)
		}
	}
	if strings.ContainsAny(clean, ",\n") {
		return fmt.Errorf("target %q contains a comma or newline", clean)
	}
	return nil
}
