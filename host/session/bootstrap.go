package session

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/internal/atomicfile"
	"github.com/loftd/loftd/rootfs/inroot"
)

// maxBootstrap bounds the script and the output loftd keeps of it.
const (
	maxBootstrap    = 1 << 20
	maxBootstrapLog = 4 << 20
)

// hostname is the guest's hostname: --hostname, [workspace] hostname, else
// the workspace's name.
func (s *session) hostname() string {
	if s.opts.Hostname != "" {
		return s.opts.Hostname
	}
	return guestHostname(s.ws.Source)
}

// prepareBootstrap puts the workspace's bootstrap script on the task root
// while it has not succeeded once (the host keeps that stamp: the guest's
// disks cannot be trusted with it). Whatever the image left at the log and
// status paths is removed first, so a status the host reads back was
// written in this boot.
func (s *session) prepareBootstrap() error {
	for _, p := range []string{contract.BootstrapPath, contract.BootstrapLogPath, contract.BootstrapStatusPath} {
		if err := inroot.Remove(s.root, p); err != nil {
			return fmt.Errorf("prepare bootstrap: %w", err)
		}
	}
	if s.opts.Bootstrap == "" {
		return nil
	}
	if _, err := os.Stat(s.ws.BootstrapDone()); err == nil {
		s.io.Log.Debug("bootstrap already done", "stamp", s.ws.BootstrapDone())
		return nil
	}
	script, err := readBootstrap(s.ws.Source, s.opts.Bootstrap)
	if err != nil {
		return err
	}
	s.bootstrap = script
	if err := inroot.WriteFile(s.root, contract.BootstrapPath, bytes.NewReader(script), 0o755); err != nil {
		return fmt.Errorf("prepare bootstrap: %w", err)
	}
	s.io.Log.Debug("bootstrap due", "script", s.opts.Bootstrap)
	return nil
}

// readBootstrap reads the script. One in the workspace (a relative path, or
// an absolute one under it) is read without following any link: the
// project, not the user, may have put one there pointing at a host file
// loftd would then hand to the guest. One elsewhere is a path the user
// named, read as it is; both must be regular files.
func readBootstrap(workspace, p string) ([]byte, error) {
	name := p
	if !filepath.IsAbs(p) {
		name = filepath.Join(workspace, p)
	}
	var f *os.File
	var err error
	if rel, ok := under(workspace, name); ok {
		f, err = inroot.Open(workspace, rel)
	} else {
		f, err = os.Open(name)
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap script %s: %w (give a regular file inside the workspace, without symlinks, or an absolute path)", p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("bootstrap script %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("bootstrap script %s: not a regular file (%s)", p, st.Mode().Type())
	}
	if st.Size() > maxBootstrap {
		return nil, fmt.Errorf("bootstrap script %s: %d bytes, more than %d (let it call a longer script in the workspace)", p, st.Size(), maxBootstrap)
	}
	return io.ReadAll(io.LimitReader(f, maxBootstrap))
}

// under reports whether name is inside dir, and its path there.
func under(dir, name string) (string, bool) {
	rel, err := filepath.Rel(dir, filepath.Clean(name))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// finishBootstrap reads back what the guest wrote of a bootstrap run (never
// through a link: the guest wrote it), keeps its output with the workspace
// and stamps the workspace when it succeeded. A failure, or a VM that ended
// before the script did, is said on stderr; the next boot runs it again.
func (s *session) finishBootstrap() {
	if s.bootstrap == nil {
		return
	}
	out, err := inroot.ReadFile(s.root, contract.BootstrapLogPath, maxBootstrapLog)
	if err == nil {
		if werr := atomicfile.WriteFile(s.ws.BootstrapLog(), out, 0o600); werr != nil {
			s.io.Log.Warn("keep bootstrap output", "err", werr)
		}
	}
	raw, err := inroot.ReadFile(s.root, contract.BootstrapStatusPath, 16)
	status, perr := strconv.Atoi(strings.TrimSpace(string(raw)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(s.io.Stderr, "%s: the bootstrap script %s did not finish in this boot; it runs again on the next one\n", s.io.Prog, s.opts.Bootstrap)
	case err != nil || perr != nil:
		fmt.Fprintf(s.io.Stderr, "%s: the bootstrap script's status is unreadable (%v%v); it runs again on the next boot\n", s.io.Prog, err, perr)
	case status != 0:
		fmt.Fprintf(s.io.Stderr, "%s: the bootstrap script %s failed with status %d; its output: %s; it runs again on the next boot\n", s.io.Prog, s.opts.Bootstrap, status, s.ws.BootstrapLog())
	default:
		stamp := fmt.Sprintf("%s sha256:%x %s\n", time.Now().UTC().Format(time.RFC3339), sha256.Sum256(s.bootstrap), s.opts.Bootstrap)
		if err := atomicfile.WriteFile(s.ws.BootstrapDone(), []byte(stamp), 0o600); err != nil {
			s.io.Log.Warn("stamp bootstrap done", "err", err)
		}
	}
}
