package e2e

// Cost benchmarks (issue 13): boot against a raw QEMU boot, the host memory
// a guest gives back after freeing, and 4 VMs at once. Under TCG every
// figure is slow in absolute terms; the ratios in one run are what to read.
// Run: go test -tags containers_image_openpgp -run '^$' -bench 'Cost' -benchtime 3x ./internal/e2e/

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loftd/loftd/helper/qemu"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/internal/vmmproc"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun/krunfw"
)

// BenchmarkCostBoot alternates `loftd -- true` with a raw boot of the same
// QEMU and kernel (no devices, an initramfs whose /init reboots at once) and
// reports both and their ratio (goal ≤ 1.10 on KVM; under TCG the kernel's
// own boot dominates both).
func BenchmarkCostBoot(b *testing.B) {
	w := benchWorld(b)
	raw := rawBootCmd(b)
	rawFS := rawVirtiofsBoot(b)
	var tLoftd, tRaw, tRawFS time.Duration
	for b.Loop() {
		start := time.Now()
		if out, err := w.cmd("--vmm", "qemu", "--", "true").CombinedOutput(); err != nil {
			b.Fatalf("loftd -- true: %v\n%s", err, out)
		}
		tLoftd += time.Since(start)
		start = time.Now()
		if out, err := raw().CombinedOutput(); err != nil {
			b.Fatalf("raw boot: %v\n%s", err, out)
		}
		tRaw += time.Since(start)
		start = time.Now()
		if err := rawFS(); err != nil {
			b.Fatalf("raw boot on virtiofs: %v", err)
		}
		tRawFS += time.Since(start)
	}
	b.ReportMetric(float64(tLoftd.Milliseconds())/float64(b.N), "ms-loftd")
	b.ReportMetric(float64(tRaw.Milliseconds())/float64(b.N), "ms-raw")
	b.ReportMetric(float64(tRawFS.Milliseconds())/float64(b.N), "ms-raw-virtiofs")
	b.ReportMetric(float64(tLoftd)/float64(tRaw), "ratio")
	b.ReportMetric(float64(tLoftd)/float64(tRawFS), "ratio-virtiofs")
}

// rawVirtiofsBoot returns one boot of the fairer baseline: the raw boot's
// machine, but the root on virtiofs (its own virtiofsd, started in the
// timed part as loftd's is) and a busybox /init there that reboots at
// once. What loftd adds over it is its own: the host phases, the ports,
// the disks and the guest init's steps.
func rawVirtiofsBoot(b *testing.B) func() error {
	b.Helper()
	kernel, qemuBin, accel := rawMachine(b)
	vfsd, flavor, err := qemu.FindVirtiofsd("")
	if err != nil {
		b.Fatal(err)
	}
	root := testenv.BusyboxRoot(b)
	if err := os.WriteFile(filepath.Join(root, "init"), []byte("#!/bin/busybox sh\n/bin/busybox reboot -f\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(b.TempDir(), "vfs.sock")
	return func() error {
		_ = os.Remove(sock)
		args := []string{"--socket-path=" + sock, "-o", "source=" + root, "-o", "cache=auto", "-o", "sandbox=chroot"}
		if flavor == launch.VirtiofsdRust {
			args = []string{"--socket-path", sock, "--shared-dir", root, "--cache", "auto", "--sandbox", "chroot"}
		}
		v := exec.Command(vfsd, args...)
		var vout bytes.Buffer
		v.Stdout, v.Stderr = &vout, &vout
		if err := v.Start(); err != nil {
			return err
		}
		defer func() { _ = v.Process.Kill(); _ = v.Wait() }()
		for i := 0; ; i++ {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if i == 2000 {
				return fmt.Errorf("virtiofsd made no socket in 10 s:\n%s", vout.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		out, err := exec.Command(qemuBin, "-accel", accel,
			"-M", "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=off",
			"-cpu", "max", "-smp", "1", "-m", "1024",
			"-object", "memory-backend-memfd,id=mem,size=1024M,share=on", "-machine", "memory-backend=mem",
			"-global", "virtio-mmio.force-legacy=false",
			"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
			"-chardev", "socket,id=fs0,path="+sock, "-device", "vhost-user-fs-device,chardev=fs0,tag=rawroot",
			"-kernel", kernel,
			"-append", "console=hvc0 root=rawroot rootfstype=virtiofs rw init=/init reboot=t panic=-1 quiet").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	}
}

// rawMachine is what both raw boots share with loftd's: libkrunfw's
// kernel, the QEMU binary and the accelerator as loftd runs it (helper/qemu
// accelOpt: single-threaded TCG).
func rawMachine(b *testing.B) (kernel, qemuBin, accel string) {
	b.Helper()
	lib, err := krunfw.Find()
	if err != nil {
		b.Fatal(err)
	}
	if kernel, err = krunfw.KernelELF(lib, b.TempDir()); err != nil {
		b.Fatal(err)
	}
	if qemuBin, err = qemu.FindQEMU(""); err != nil {
		b.Fatal(err)
	}
	if accel, _ = qemu.PickAccel(os.Getenv("LOFTD_QEMU_ACCEL"), qemuBin); accel == "tcg" {
		accel = "tcg,thread=single"
	}
	return kernel, qemuBin, accel
}

// rawBootCmd returns a maker of the raw boot: loftd's QEMU machine line
// (accelerator, microvm, memory) with only the kernel and an initramfs.
func rawBootCmd(b *testing.B) func() *exec.Cmd {
	b.Helper()
	kernel, qemuBin, accel := rawMachine(b)
	initrd := filepath.Join(b.TempDir(), "initrd.cpio")
	bb := testenv.RequireCommand(b, "busybox", "busybox-static")
	data, err := os.ReadFile(bb)
	if err != nil {
		b.Fatal(err)
	}
	cpio := newcArchive([]cpioEntry{
		{name: "bin", mode: 0o40755},
		{name: "bin/busybox", mode: 0o100755, data: data},
		{name: "init", mode: 0o100755, data: []byte("#!/bin/busybox sh\n/bin/busybox reboot -f\n")},
	})
	if err := os.WriteFile(initrd, cpio, 0o644); err != nil {
		b.Fatal(err)
	}
	return func() *exec.Cmd {
		return exec.Command(qemuBin, "-accel", accel,
			"-M", "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=off",
			"-cpu", "max", "-smp", "1", "-m", "1024",
			"-object", "memory-backend-memfd,id=mem,size=1024M,share=on", "-machine", "memory-backend=mem",
			"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
			"-kernel", kernel, "-initrd", initrd,
			"-append", "console=hvc0 rdinit=/init reboot=t panic=-1 quiet")
	}
}

type cpioEntry struct {
	name string
	mode uint32
	data []byte
}

// newcArchive writes entries as a "newc" cpio archive, what the kernel
// unpacks as an initramfs.
func newcArchive(entries []cpioEntry) []byte {
	var buf bytes.Buffer
	pad := func() {
		for buf.Len()%4 != 0 {
			buf.WriteByte(0)
		}
	}
	entries = append(entries, cpioEntry{name: "TRAILER!!!"})
	for i, e := range entries {
		fmt.Fprintf(&buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			i+1, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, 0, 0, len(e.name)+1, 0)
		buf.WriteString(e.name)
		buf.WriteByte(0)
		pad()
		buf.Write(e.data)
		pad()
	}
	return buf.Bytes()
}

// allocFree is the guest's part of the memory benchmarks: it fills MiB of
// /dev/shm (tmpfs, so guest memory), frees it, and marks each phase on
// stdout for the host's sampler. Free page reporting works in 2 MiB blocks
// after a 2 s delay, 64 MiB at a time: the host samples 5 s and 15 s after
// the free (under TCG the guest needs about 10 s to report 1 GiB).
func allocFree(mib int) string {
	return fmt.Sprintf(`echo ready; sleep 2
echo allocating
dd if=/dev/zero of=/dev/shm/x bs=1M count=%d 2>/dev/null || exit 3
echo allocated; sleep 1
rm /dev/shm/x
echo freed; sleep 5
echo freed5s; sleep 10
echo done`, mib)
}

// rssRun runs one loftd session with script and samples its VMM's RSS
// every 100 ms, by the phase the workload last printed.
type rssRun struct {
	mu    sync.Mutex
	phase string
	last  map[string]int64 // the last sample in each phase
	peak  map[string]int64
	guest map[string]int64 // the last RssShmem (guest RAM) in each phase
}

// runSampled returns an error rather than failing b: it also runs on
// other goroutines (BenchmarkCostFourVMs).
func runSampled(w *world, mem string, script string) (*rssRun, error) {
	r := &rssRun{phase: "boot", last: map[string]int64{}, peak: map[string]int64{}, guest: map[string]int64{}}
	c := w.cmd("--vmm", "qemu", "--mem", mem, "--", "sh", "-c", script)
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			r.sample(c.Process.Pid)
		}
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		r.sample(c.Process.Pid) // the end of the phase before
		r.mu.Lock()
		r.phase = strings.TrimSpace(sc.Text())
		r.mu.Unlock()
	}
	close(stop)
	<-sampled
	if err := c.Wait(); err != nil {
		return nil, fmt.Errorf("loftd (alloc/free): %v\n%s", err, stderr.String())
	}
	return r, nil
}

func (r *rssRun) sample(loftdPID int) {
	procs, err := vmmproc.Table("/proc")
	if err != nil {
		return
	}
	pid := vmmproc.VMM(procs, loftdPID)
	if pid == 0 {
		return
	}
	rss, err := vmmproc.RSS("/proc", pid)
	if err != nil {
		return
	}
	shm, _ := vmmproc.Shmem("/proc", pid)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[r.phase] = rss
	r.guest[r.phase] = shm
	r.peak[r.phase] = max(r.peak[r.phase], rss)
}

func (r *rssRun) get(m map[string]int64, phase string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return m[phase]
}

const mib = 1 << 20

// BenchmarkCostRSSAfterFree: QEMU's RSS before a 1 GiB allocation in the
// guest, at its peak, and 5 s and 15 s after the guest freed it (goal:
// after within 15 % of before).
func BenchmarkCostRSSAfterFree(b *testing.B) {
	w := benchWorld(b)
	var before, peak, after, after15, guestBefore, guestAfter int64
	for b.Loop() {
		r, err := runSampled(w, "4", allocFree(1024))
		if err != nil {
			b.Fatal(err)
		}
		before += r.get(r.last, "ready")
		peak += r.get(r.peak, "allocated")
		after += r.get(r.last, "freed")
		after15 += r.get(r.last, "freed5s")
		guestBefore += r.get(r.guest, "ready")
		guestAfter += r.get(r.guest, "freed5s")
	}
	n := int64(b.N)
	b.ReportMetric(float64(before/n)/mib, "MiB-before")
	b.ReportMetric(float64(peak/n)/mib, "MiB-peak")
	b.ReportMetric(float64(after/n)/mib, "MiB-after5s")
	b.ReportMetric(float64(after15/n)/mib, "MiB-after15s")
	b.ReportMetric(float64(after15)/float64(before), "after15s/before")
	// The guest RAM alone (the memfd): QEMU's own memory, under TCG mostly
	// its code cache, grows with what the guest ran and is no guest page.
	b.ReportMetric(float64(guestBefore/n)/mib, "MiB-guest-before")
	b.ReportMetric(float64(guestAfter/n)/mib, "MiB-guest-after15s")
}

// BenchmarkCostFourVMs: 4 sessions at once, each filling and freeing 2 GiB;
// the peak of the sum of their VMMs' RSS, and the sum when all have freed.
func BenchmarkCostFourVMs(b *testing.B) {
	var worlds []*world
	for range 4 {
		worlds = append(worlds, benchWorld(b))
	}
	var peakSum, afterSum int64
	for b.Loop() {
		runs := make([]*rssRun, 4)
		errs := make([]error, 4)
		var wg sync.WaitGroup
		for i, w := range worlds {
			wg.Go(func() { runs[i], errs[i] = runSampled(w, "5", allocFree(2048)) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		for _, r := range runs {
			// Not simultaneous to the sample, but the VMs overlap: the sum of
			// peaks bounds the true peak from above.
			peakSum += r.get(r.peak, "allocated")
			afterSum += r.get(r.last, "freed5s")
		}
	}
	n := int64(b.N)
	b.ReportMetric(float64(peakSum/n)/mib, "MiB-peak-sum")
	b.ReportMetric(float64(afterSum/n)/mib, "MiB-after15s-sum")
}
