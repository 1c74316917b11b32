package helper

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/loftd/loftd/launch"
)

// The parent probed passt and the plan carries what it found: the helper
// starts the plan's passt without asking it again. The stand-in counts
// every --help and --version it answers; a probe from the helper (which a
// fresh binary path keeps out of any cache) shows up in the count.
func TestHelperStartsPasstWithoutProbing(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "probes")
	fake := filepath.Join(dir, "passt")
	script := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in --help|--version) echo \"$1\" >> %s; echo '  -F, --fd FD'; exit 0;; esac\nexec sleep 60\n", count)
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &launch.Plan{
		Version: launch.Version, VMM: launch.VMMQEMU, VCPUs: 1, RAMMiB: 256, Root: "/r", ExecPath: "/init",
		CacheDir: t.TempDir(),
		Network: launch.Network{Mode: launch.NetworkPasst,
			Passt:   &launch.Passt{Path: fake, Features: launch.PasstFeatures{Version: "stand-in", FD: true}},
			Publish: []launch.Publish{{HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: launch.TCP}}},
	}
	h := &Helper{TaskDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	proc, vmEnd, err := h.startNet(p)
	if err != nil {
		t.Fatalf("startNet() = %v", err)
	}
	vmEnd.Close()
	h.stopNet(proc)
	if data, err := os.ReadFile(count); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the helper probed passt (%q, %v); want no --help or --version: the plan carries the features", data, err)
	}
}
