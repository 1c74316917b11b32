// Package cglimits reads the memory and CPU limits a process's cgroups put
// on it, on cgroup v2 and v1 (and hybrid hosts, where the controllers sit on
// v1 hierarchies), as a container or a Kubernetes pod sees them. loftd sizes
// its VMs from them, so a VM in a pod fits the pod, not the node.
//
// It imports nothing of loftd.
package cglimits

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Limits are the tightest limits along a process's cgroup and its
// ancestors. A zero field is "no limit found".
type Limits struct {
	MemBytes uint64
	// CPUs is the CPU quota rounded up to whole CPUs (1.5 CPUs is 2).
	CPUs int
	// MemFile and CPUFile name the file each limit was read from.
	MemFile, CPUFile string
}

// Self reads the limits of the calling process.
func Self() (Limits, error) { return Of("self") }

// Of reads the limits of process pid ("self" for the caller) from
// /proc/PID/cgroup and /proc/PID/mountinfo.
func Of(pid string) (Limits, error) {
	cg, err := os.ReadFile(filepath.Join("/proc", pid, "cgroup"))
	if err != nil {
		return Limits{}, fmt.Errorf("read cgroups: %w", err)
	}
	mi, err := os.Open(filepath.Join("/proc", pid, "mountinfo"))
	if err != nil {
		return Limits{}, fmt.Errorf("read mounts: %w", err)
	}
	defer mi.Close()
	mounts, err := parseMountinfo(mi)
	if err != nil {
		return Limits{}, fmt.Errorf("read mounts: %w", err)
	}
	return read(parseCgroup(cg), mounts), nil
}

// membership is one line of /proc/PID/cgroup.
type membership struct {
	controllers []string // empty for the v2 line
	path        string
}

func parseCgroup(b []byte) []membership {
	var out []membership
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var ctrl []string
		if parts[1] != "" {
			ctrl = strings.Split(parts[1], ",")
		}
		out = append(out, membership{controllers: ctrl, path: parts[2]})
	}
	return out
}

// mount is a cgroup filesystem from /proc/PID/mountinfo.
type mount struct {
	root, point string
	v2          bool
	controllers map[string]bool // v1: from the super options
}

func parseMountinfo(r io.Reader) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		m := mount{root: unescape(f[3]), point: unescape(f[4])}
		switch g[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			m.controllers = map[string]bool{}
			for _, o := range strings.Split(g[2], ",") {
				m.controllers[o] = true
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// dirOf is the directory of the cgroup at path (as /proc/PID/cgroup names
// it) under mount m, or "" when the mount does not show it (a mount of
// another part of the hierarchy).
func dirOf(m mount, path string) string {
	rel, ok := strings.CutPrefix(path, m.root)
	if !ok || (m.root != "/" && rel != "" && !strings.HasPrefix(rel, "/")) {
		return ""
	}
	return filepath.Join(m.point, rel)
}

func read(cgs []membership, mounts []mount) Limits {
	var l Limits
	for _, cg := range cgs {
		for _, m := range mounts {
			switch {
			case m.v2 && len(cg.controllers) == 0:
				if dir := dirOf(m, cg.path); dir != "" {
					walk(dir, m.point, func(d string) {
						l.mem(filepath.Join(d, "memory.max"), readMax(filepath.Join(d, "memory.max")))
						q, p := readCPUMax(filepath.Join(d, "cpu.max"))
						l.cpu(filepath.Join(d, "cpu.max"), q, p)
					})
				}
			case !m.v2 && has(cg.controllers, "memory") && m.controllers["memory"]:
				if dir := dirOf(m, cg.path); dir != "" {
					walk(dir, m.point, func(d string) {
						f := filepath.Join(d, "memory.limit_in_bytes")
						l.mem(f, readMax(f))
					})
				}
			case !m.v2 && has(cg.controllers, "cpu") && m.controllers["cpu"]:
				if dir := dirOf(m, cg.path); dir != "" {
					walk(dir, m.point, func(d string) {
						q := readInt(filepath.Join(d, "cpu.cfs_quota_us"))
						p := readInt(filepath.Join(d, "cpu.cfs_period_us"))
						l.cpu(filepath.Join(d, "cpu.cfs_quota_us"), q, p)
					})
				}
			}
		}
	}
	return l
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// walk calls f on dir and each ancestor up to and including top: a limit
// on a parent binds its children too.
func walk(dir, top string, f func(string)) {
	for {
		f(dir)
		if dir == top || !strings.HasPrefix(dir, top) {
			return
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return
		}
		dir = parent
	}
}

// noLimit is above any real RAM: v1 reports "unlimited" as a page-rounded
// LONG_MAX.
const noLimit = math.MaxInt64 / 2

func (l *Limits) mem(file string, v uint64) {
	if v == 0 || v >= noLimit {
		return
	}
	if l.MemBytes == 0 || v < l.MemBytes {
		l.MemBytes, l.MemFile = v, file
	}
}

func (l *Limits) cpu(file string, quota, period int64) {
	if quota <= 0 || period <= 0 {
		return
	}
	n := int((quota + period - 1) / period)
	if l.CPUs == 0 || n < l.CPUs {
		l.CPUs, l.CPUFile = n, file
	}
}

// readMax reads a byte count, "max" (v2's no limit) or nothing as 0.
func readMax(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// readCPUMax reads v2's "QUOTA PERIOD" ("max PERIOD": no limit).
func readCPUMax(path string) (quota, period int64) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "max" {
		return 0, 0
	}
	q, err1 := strconv.ParseInt(f[0], 10, 64)
	p, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return q, p
}
