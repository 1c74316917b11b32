package session

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/loftd/loftd/host/state"
)

// BackgroundEnv marks the loftd a -d (or an interactive start) spawned as
// the VM's owner: "detached" or "hold". It reports on fd 3.
const BackgroundEnv = "_LOFTD_BACKGROUND"

// Background modes.
const (
	BackgroundDetached = "detached" // -d: the VM outlives its sessions
	BackgroundHold     = "hold"     // interactive start: ends with its main session and last tunnel
)

// SpawnOwner starts this loftd again with args as the background owner of
// the workspace VM (its own session, stdin from /dev/null, its log in the
// task directory) and returns once the VM is ready, or with why it failed.
// The owner's early messages (before its task exists) reach our stderr.
func SpawnOwner(e IO, args []string, mode string) error {
	exe, err := executable()
	if err != nil {
		return ExitError{Status: ExitSetup, Err: fmt.Errorf("start the VM in the background: %w", err)}
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return ExitError{Status: ExitSetup, Err: fmt.Errorf("start the VM in the background: %w", err)}
	}
	defer readyR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return ExitError{Status: ExitSetup, Err: fmt.Errorf("start the VM in the background: %w", err)}
	}
	defer errR.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), BackgroundEnv+"="+mode)
	cmd.Stderr = errW
	cmd.ExtraFiles = []*os.File{readyW}
	// Its own session: no terminal, no SIGHUP from ours, not in our
	// process group's ^C.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	errW.Close()
	if err != nil {
		return ExitError{Status: ExitSetup, Err: fmt.Errorf("start the VM in the background: %w", err)}
	}
	go func() { _, _ = io.Copy(e.Stderr, errR) }()
	line, _ := bufio.NewReader(readyR).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "ready" {
		e.Log.Debug("workspace VM started in the background", "pid", cmd.Process.Pid, "mode", mode)
		_ = cmd.Process.Release()
		return nil
	}
	// It failed; it ends on its own (its session's clean-up runs).
	_ = cmd.Process.Release()
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		return ExitError{Status: ExitSetup, Err: fmt.Errorf("the workspace VM did not start: %s", msg)}
	}
	return ExitError{Status: ExitSetup, Err: errors.New("the workspace VM did not start (its owner ended without a word)")}
}

// LiveWorkspace is the workspace named by dir ("" : the current one) and
// its running VM (nil when none runs).
func LiveWorkspace(e IO, cfg *Config, dir string) (state.Workspace, *state.LiveVM, error) {
	st, err := OpenState(e, cfg)
	if err != nil {
		return state.Workspace{}, nil, err
	}
	if dir == "" {
		dir = "."
	}
	src, err := state.FindWorkspace(dir)
	if err != nil {
		return state.Workspace{}, nil, err
	}
	ws := st.Workspace(src)
	v, err := FindLive(ws)
	return ws, v, err
}
