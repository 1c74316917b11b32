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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/qemu"
	"github.com/loftd/loftd/internal/testenv"
	"github.com/loftd/loftd/internal/vmmproc"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/libkrun/krunfw"
)

// bootCPUs and bootMemMiB are the one machine of BenchmarkCostBoot: loftd
// gets them as --cpus/--mem, every raw boot as -smp/-m (the issue-23
// figures were taken with 2 vCPUs and 2 GiB).
const (
	bootCPUs   = 2
	bootMemMiB = 2048
)

// BenchmarkCostBoot alternates `loftd -- true` with three raw boots of the
// same machine (QEMU, kernel, kernel command line, vCPUs, memory), each an
// init that reboots at once: from an initramfs without devices; from a
// virtiofs root; and from a virtiofs root with every device a default
// loftd run attaches (a second share, both disks, the balloon, the
// virtio-serial ports, the network). It reports each and the ratios of one
// run: loftd against the fullest raw boot is loftd's own cost (host phases,
// guest init steps, end protocol); devices against virtiofs is what probing
// the devices costs the kernel. Under TCG the kernel's own boot dominates.
func BenchmarkCostBoot(b *testing.B) {
	w := benchWorld(b)
	m := newRawMachine(b)
	boots := []struct {
		name  string
		run   func() error
		total time.Duration
	}{
		{name: "loftd", run: func() error {
			c := w.cmd("--vmm", "qemu", "--cpus", strconv.Itoa(bootCPUs), "--mem", strconv.Itoa(bootMemMiB/1024), "--", "true")
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("loftd -- true: %v\n%s", err, out)
			}
			return nil
		}},
		{name: "raw", run: m.initrdBoot(b)},
		{name: "raw-virtiofs", run: m.virtiofsBoot(b, false)},
		{name: "raw-devices", run: m.virtiofsBoot(b, true)},
	}
	for b.Loop() {
		for i := range boots {
			start := time.Now()
			if err := boots[i].run(); err != nil {
				b.Fatalf("%s: %v", boots[i].name, err)
			}
			boots[i].total += time.Since(start)
		}
	}
	for _, k := range boots {
		b.ReportMetric(float64(k.total.Milliseconds())/float64(b.N), "ms-"+k.name)
	}
	loftd := boots[0].total
	b.ReportMetric(float64(loftd)/float64(boots[1].total), "ratio")
	b.ReportMetric(float64(loftd)/float64(boots[2].total), "ratio-virtiofs")
	b.ReportMetric(float64(loftd)/float64(boots[3].total), "ratio-devices")
	b.ReportMetric(float64(boots[3].total)/float64(boots[2].total), "devices/virtiofs")
}

// rawMachine is what the raw boots share with loftd's: libkrunfw's
// kernel, the QEMU binary, the accelerator as loftd runs it (helper/qemu
// accelOpt: single-threaded TCG) and loftd's kernel command line.
type rawMachine struct {
	kernel, qemu, accel string
	virtiofsd           string
	flavor              launch.VirtiofsdFlavor
}

func newRawMachine(b *testing.B) *rawMachine {
	b.Helper()
	m := &rawMachine{}
	lib, err := krunfw.Find()
	if err != nil {
		b.Fatal(err)
	}
	if m.kernel, err = krunfw.KernelELF(lib, b.TempDir()); err != nil {
		b.Fatal(err)
	}
	if m.qemu, err = qemu.FindQEMU(""); err != nil {
		b.Fatal(err)
	}
	accel, _ := qemu.PickAccel(os.Getenv("LOFTD_QEMU_ACCEL"), m.qemu)
	m.accel = accel
	if accel == "tcg" {
		m.accel = "tcg,thread=single"
	}
	if m.virtiofsd, m.flavor, err = qemu.FindVirtiofsd(""); err != nil {
		b.Fatal(err)
	}
	return m
}

// args is loftd's machine line (helper/qemu Args) with the kernel command
// line for an init at init; the devices come after.
func (m *rawMachine) args(cmdline string) []string {
	mem := strconv.Itoa(bootMemMiB)
	return []string{"-accel", m.accel,
		"-M", "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=off",
		"-cpu", "max", "-smp", strconv.Itoa(bootCPUs), "-m", mem,
		"-object", "memory-backend-memfd,id=mem,size=" + mem + "M,share=on", "-machine", "memory-backend=mem",
		"-global", "virtio-mmio.force-legacy=false",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-kernel", m.kernel, "-append", cmdline}
}

const rebootInit = "#!/bin/busybox sh\n/bin/busybox reboot -f\n"

// initrdBoot returns one boot from an initramfs whose /init reboots at
// once: no device at all. The command line is loftd's, with rdinit= so the
// kernel runs the initramfs's init rather than mount a virtiofs root.
func (m *rawMachine) initrdBoot(b *testing.B) func() error {
	b.Helper()
	initrd := filepath.Join(b.TempDir(), "initrd.cpio")
	bb := testenv.RequireCommand(b, "busybox", "busybox-static")
	data, err := os.ReadFile(bb)
	if err != nil {
		b.Fatal(err)
	}
	cpio := newcArchive([]cpioEntry{
		{name: "bin", mode: 0o40755},
		{name: "bin/busybox", mode: 0o100755, data: data},
		{name: "init", mode: 0o100755, data: []byte(rebootInit)},
	})
	if err := os.WriteFile(initrd, cpio, 0o644); err != nil {
		b.Fatal(err)
	}
	line := qemu.GuestCmdline("/init", m.accel) + " rdinit=/init"
	return func() error {
		args := append(m.args(line), "-initrd", initrd)
		if out, err := exec.Command(m.qemu, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	}
}

// virtiofsBoot returns one boot from a virtiofs root (its own virtiofsd,
// started in the timed part as loftd's is) whose /init reboots at once.
// With devices it also attaches what a default loftd run does, in loftd's
// order: a workspace share, the nix and containers disks (sparse files:
// probing reads no filesystem), the free-page-reporting balloon, the
// virtio-serial device with the console and loftd's four ports, and a
// virtio-net device (user networking: the guest probes the same device).
func (m *rawMachine) virtiofsBoot(b *testing.B, devices bool) func() error {
	b.Helper()
	root := testenv.BusyboxRoot(b)
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(rebootInit), 0o755); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	shares := []string{root}
	if devices {
		shares = append(shares, b.TempDir())
	}
	var disks []string
	if devices {
		for _, name := range []string{"nix.img", "containers.img"} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				b.Fatal(err)
			}
			if err := os.Truncate(p, 1<<30); err != nil {
				b.Fatal(err)
			}
			disks = append(disks, p)
		}
	}
	line := qemu.GuestCmdline("/init", m.accel)
	return func() error {
		args := m.args(line)
		for i, share := range shares {
			sock := filepath.Join(dir, fmt.Sprintf("vfs%d.sock", i))
			stop, err := m.startVirtiofsd(sock, share)
			if err != nil {
				return err
			}
			defer stop()
			tag := contract.RootTag // loftd's: the command line is the same
			if i > 0 {
				tag = "rawshare" + strconv.Itoa(i)
			}
			args = append(args, "-chardev", fmt.Sprintf("socket,id=fs%d,path=%s", i, sock),
				"-device", fmt.Sprintf("vhost-user-fs-device,chardev=fs%d,tag=%s", i, tag))
		}
		for i, d := range disks {
			args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=blk%d,format=raw", d, i),
				"-device", fmt.Sprintf("virtio-blk-device,drive=blk%d,serial=disk%d", i, i))
		}
		if devices {
			args = append(args, "-device", "virtio-balloon-device,free-page-reporting=on",
				"-chardev", "null,id=con", "-device", "virtio-serial-device", "-device", "virtconsole,chardev=con")
			for i := range 4 {
				args = append(args, "-chardev", fmt.Sprintf("null,id=port%d", i),
					"-device", fmt.Sprintf("virtserialport,chardev=port%d,name=raw-port%d", i, i))
			}
			args = append(args, "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0")
		}
		if out, err := exec.Command(m.qemu, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	}
}

// startVirtiofsd serves dir on sock and returns once the socket is there.
func (m *rawMachine) startVirtiofsd(sock, dir string) (stop func(), err error) {
	_ = os.Remove(sock)
	args := []string{"--socket-path=" + sock, "-o", "source=" + dir, "-o", "cache=auto", "-o", "sandbox=chroot"}
	if m.flavor == launch.VirtiofsdRust {
		args = []string{"--socket-path", sock, "--shared-dir", dir, "--cache", "auto", "--sandbox", "chroot"}
	}
	v := exec.Command(m.virtiofsd, args...)
	var vout bytes.Buffer
	v.Stdout, v.Stderr = &vout, &vout
	if err := v.Start(); err != nil {
		return nil, err
	}
	stop = func() { _ = v.Process.Kill(); _ = v.Wait() }
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			return stop, nil
		}
		if i == 2000 {
			stop()
			return nil, fmt.Errorf("virtiofsd made no socket in 10 s:\n%s", vout.String())
		}
		time.Sleep(5 * time.Millisecond)
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
