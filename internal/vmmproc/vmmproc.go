// Package vmmproc finds the process that holds a loftd task's guest memory
// and reads its resident set from /proc: `loftd ps` shows it, `doctor`
// and the cost benchmarks use it. It imports nothing of loftd.
//
// A task records the pid of its loftd (the parent). The VM lives below it:
// under QEMU it is the qemu-system-* child of the helper (`loftd internal
// enter`), under libkrun the helper itself (krun_start_enter takes the
// helper over). Walking /proc for descendants finds either without the
// helper having to publish anything.
package vmmproc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Proc is one process as /proc describes it.
type Proc struct {
	PID, PPID int
	Comm      string   // the kernel's 15-byte command name
	Args      []string // the command line (empty for a zombie or kernel thread)
}

// Table reads every process in procRoot ("/proc" on a real system).
// Processes that end while it reads are skipped.
func Table(procRoot string) ([]Proc, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue
		}
		p, ok := parseStat(pid, stat)
		if !ok {
			continue
		}
		if cmd, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline")); err == nil {
			p.Args = strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		}
		out = append(out, p)
	}
	return out, nil
}

// parseStat reads comm and ppid from /proc/PID/stat: "PID (COMM) S PPID …".
// COMM may hold spaces and parentheses, so it ends at the last ')'.
func parseStat(pid int, stat []byte) (Proc, bool) {
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return Proc{}, false
	}
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 2 {
		return Proc{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Proc{}, false
	}
	return Proc{PID: pid, PPID: ppid, Comm: string(stat[open+1 : end])}, true
}

// VMM returns the pid of the process holding the guest memory of the task
// whose loftd is pid: the first qemu-system-* below it, else the helper
// (`… internal enter …`, the libkrun VMM). 0 when neither runs (yet).
func VMM(procs []Proc, pid int) int {
	children := map[int][]Proc{}
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p)
	}
	helper := 0
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			if isQEMU(c) {
				return c.PID
			}
			if helper == 0 && isHelper(c.Args) {
				helper = c.PID
			}
			queue = append(queue, c.PID)
		}
	}
	return helper
}

// isQEMU: QEMU's comm is qemu-system-*, unless it was exec'd from an fd
// (the confined QEMU's wrapper), which names it by the fd's number: then
// its argv[0] still names it.
func isQEMU(p Proc) bool {
	if strings.HasPrefix(p.Comm, "qemu-system") {
		return true
	}
	return len(p.Args) > 0 && strings.HasPrefix(filepath.Base(p.Args[0]), "qemu-system")
}

// isHelper: the helper's command line is `loftd internal enter [flags] TASKDIR`.
func isHelper(args []string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "internal" && args[i+1] == "enter" {
			return true
		}
	}
	return false
}

// RSS is pid's resident set in bytes (VmRSS of /proc/PID/status: anonymous,
// file and shared memory — QEMU's guest RAM is a memfd, counted as shared).
func RSS(procRoot string, pid int) (int64, error) { return statusBytes(procRoot, pid, "VmRSS") }

// Shmem is the shared part of pid's resident set (RssShmem): under QEMU the
// guest RAM alone, without QEMU's own memory (TCG's code cache and the like).
func Shmem(procRoot string, pid int) (int64, error) { return statusBytes(procRoot, pid, "RssShmem") }

func statusBytes(procRoot string, pid int, field string) (int64, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("%s of %d: %w", field, pid, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
			return 0, fmt.Errorf("%s of %d: bad line %q", field, pid, line)
		}
	}
	return 0, fmt.Errorf("%s of %d: not in status (a zombie?)", field, pid)
}

// Descendants are the processes below pid, breadth first.
func Descendants(procs []Proc, pid int) []Proc {
	children := map[int][]Proc{}
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p)
	}
	var out []Proc
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			out = append(out, c)
			queue = append(queue, c.PID)
		}
	}
	return out
}

// Role names a process of a session: "helper", "qemu", "virtiofsd" or
// "passt"; "" for any other (the workload's own host processes, a wrapper
// between fork and exec). A program exec'd from an fd has the fd's number
// as its comm: argv[0] names it then.
func Role(p Proc) string {
	name := p.Comm
	if len(p.Args) > 0 && p.Args[0] != "" {
		name = filepath.Base(p.Args[0])
	}
	switch {
	case isQEMU(p):
		return "qemu"
	case isHelper(p.Args):
		return "helper"
	case len(p.Args) > 2 && p.Args[1] == "internal" && p.Args[2] == "netstack":
		return "netstack"
	case strings.HasPrefix(name, "virtiofsd"):
		return "virtiofsd"
	case strings.HasPrefix(name, "passt") || strings.HasPrefix(p.Comm, "passt"):
		return "passt"
	}
	return ""
}
