package passt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loftd/loftd/launch"
	"golang.org/x/sys/unix"
)

// Features are the options of one passt binary that loftd cares about
// (the plan carries them, so the helper never asks passt again).
type Features = launch.PasstFeatures

// parseHelp reads the features from passt's --help and --version output.
func parseHelp(help, version string) Features {
	v := "unknown"
	if line, _, _ := strings.Cut(strings.TrimSpace(version), "\n"); line != "" {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "passt" {
			v = strings.Join(f[1:], " ")
		}
	}
	return Features{
		Version:         v,
		FD:              strings.Contains(help, "--fd"),
		MapHostLoopback: strings.Contains(help, "--map-host-loopback"),
		MapGuestAddr:    strings.Contains(help, "--map-guest-addr"),
		DNSHost:         strings.Contains(help, "--dns-host"),
	}
}

// Probe runs path --help and --version (about 10 ms) and reads its
// features. With cacheDir set the answer is kept there, keyed by the
// binary's path, size and mtime, like the QEMU accelerator probe.
func Probe(path, cacheDir string) (Features, error) {
	key, keyed := binaryKey(path)
	cache := ""
	if keyed && cacheDir != "" {
		cache = filepath.Join(cacheDir, "passt-"+key)
		if data, err := os.ReadFile(cache); err == nil {
			var f Features
			if json.Unmarshal(data, &f) == nil {
				return f, nil
			}
		}
	}
	// passt prints its help on stderr (and "Failed to send … to syslog"
	// lines without a syslog): read both.
	help, err := exec.Command(path, "--help").CombinedOutput()
	if err != nil && len(help) == 0 {
		return Features{}, fmt.Errorf("probe passt %s: %w", path, err)
	}
	f := parseHelp(string(help), string(bytes.TrimSpace(versionOutput(path))))
	if cache != "" {
		if data, err := json.Marshal(f); err == nil && os.MkdirAll(cacheDir, 0o755) == nil {
			tmp := cache + ".tmp"
			if os.WriteFile(tmp, data, 0o644) == nil && os.Rename(tmp, cache) != nil {
				os.Remove(tmp)
			}
		}
	}
	return f, nil
}

// versionOutput is what path --version prints. Releases of 2024 and 2025
// print it with stdio's buffer and leave by _exit, so through a pipe it is
// lost: when the pipe gets nothing, the answer is read from a terminal
// (line-buffered).
func versionOutput(path string) []byte {
	out, _ := exec.Command(path, "--version").CombinedOutput()
	if len(bytes.TrimSpace(out)) > 0 {
		return out
	}
	ptm, pts, err := openPty()
	if err != nil {
		return nil
	}
	defer ptm.Close()
	cmd := exec.Command(path, "--version")
	cmd.Stdout, cmd.Stderr = pts, pts
	err = cmd.Run()
	pts.Close()
	if err != nil {
		return nil
	}
	// The output is far below the terminal's buffer, so it is all there;
	// a read after the last one fails with EIO (no slave left).
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(ptm)
	return bytes.ReplaceAll(buf.Bytes(), []byte("\r\n"), []byte("\n"))
}

// openPty opens a pseudo-terminal pair.
func openPty() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0)
	}
	if err == nil {
		pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	return ptm, pts, nil
}

func binaryKey(path string) (string, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", false
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d.%d\x00%d", path, st.Mtim.Sec, st.Mtim.Nsec, st.Size))
	return hex.EncodeToString(sum[:8]), true
}
