package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/disks"
	"github.com/loftd/loftd/helper/live"
	"github.com/loftd/loftd/host/liveclient"
	"github.com/loftd/loftd/host/state"
	"github.com/loftd/loftd/rootfs/inroot"
	"golang.org/x/sys/unix"
)

// HostKeyAlias is the name the workspace's pinned host key is known
// under (ssh-config's HostKeyAlias and Host).
func HostKeyAlias(ws state.Workspace) string {
	return "loftd-" + state.WorkspaceName(ws.Source)
}

// WorkspaceKeys are the workspace's SSH keys, made on first use and owned
// by the user (ssh reads them as IdentityFile).
func WorkspaceKeys(ws state.Workspace) (*liveclient.Keys, error) {
	k, err := liveclient.EnsureKeys(ws.Dir, HostKeyAlias(ws))
	if err != nil {
		return nil, err
	}
	if err := ownByUser(k.Dir, filepath.Join(k.Dir, "host_key"), filepath.Join(k.Dir, "client_key"),
		filepath.Join(k.Dir, "host_key.pub"), filepath.Join(k.Dir, "client_key.pub")); err != nil {
		return nil, err
	}
	return k, nil
}

// prepareLive gives the task the workspace's keys: the helper's copy (the
// outer connection) in the task directory, and the guest's (its host key
// and authorized_keys) on the task root, written beneath it with
// rootfs/inroot since the image controls the tree.
func (s *session) prepareLive() error {
	keys, err := WorkspaceKeys(s.ws)
	if err != nil {
		return err
	}
	s.keys = keys
	// The record (written once the helper listens) goes before the task.
	s.undo = append(s.undo, func() error { return s.ws.RemoveLive(s.taskDir) })
	if err := RecordSource(s.ws); err != nil {
		return err
	}
	if err := live.WriteKeys(s.taskDir, keys.ClientPEM, keys.HostPublicLine()); err != nil {
		return err
	}
	return nil
}

func (s *session) writeSSHFiles() error {
	if err := inroot.WriteFile(s.root, contract.SSHHostKeyPath, bytes.NewReader(s.keys.HostPEM), 0o600); err != nil {
		return fmt.Errorf("write the guest's ssh host key: %w", err)
	}
	auth := s.keys.AuthorizedKeys(s.io.Getenv("HOME"), s.io.Getenv("SSH_AUTH_SOCK"))
	if err := inroot.WriteFile(s.root, contract.SSHAuthorizedKeysPath, bytes.NewReader(auth), 0o644); err != nil {
		return fmt.Errorf("write the guest's authorized keys: %w", err)
	}
	return nil
}

// recordLive tells a second loftd for this workspace where the VM runs,
// once the helper listens; prepareLive's undo removes it.
func (s *session) recordLive() error {
	v := state.LiveVM{
		Workspace: s.ws.Source, Task: s.taskDir, PID: os.Getpid(), Started: time.Now().UTC(),
		Detached: s.opts.Detach, Hold: s.opts.Hold, Command: s.opts.Command,
	}
	return s.ws.WriteLive(v)
}

// FindLive returns the running VM of workspace ws, or nil when none
// answers: a record whose sockets are gone is stale. It waits for a VM
// that is still booting.
func FindLive(ws state.Workspace) (*state.LiveVM, error) {
	v, err := ws.ReadLive()
	if err != nil || v == nil {
		// An unreadable record (a crash mid-write) is a stale one: a VM
		// that still runs holds the workspace lock, which says so.
		return nil, nil
	}
	if _, err := live.Ask(v.Task, live.Request{Op: live.OpReady}); err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("the workspace's running VM (%s): %w", v.Task, err)
	}
	return v, nil
}

// logToTask sends this process's stdout and stderr to TASKDIR/loftd.log:
// the VM owner of -d has no terminal once its parent returned.
func logToTask(taskDir string) error {
	f, err := os.OpenFile(filepath.Join(taskDir, "loftd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("background log: %w", err)
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("background log: %w", err)
		}
	}
	return nil
}

// started runs once the helper runs (until done, its end): as soon as the
// helper's control socket exists the VM is recorded for a second loftd,
// and a background owner tells its parent when the guest's server answers
// (or that it never did).
func (s *session) started(done <-chan struct{}) {
	go func() {
		sock := filepath.Join(s.taskDir, live.ControlSocket)
		for {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			select {
			case <-done:
				s.ready.send(errors.New("the VM ended before its control channel was up"))
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		if err := s.recordLive(); err != nil {
			s.io.Log.Warn("the running VM cannot be joined", "err", err)
		}
		_, err := live.Ask(s.taskDir, live.Request{Op: live.OpReady})
		s.ready.send(err)
	}()
}

// join runs the session's command in the workspace's running VM, with the
// contract of a fresh run: own stdio, the exact exit status, signals and
// window size; with no command on a terminal it attaches to the held main
// session, or opens a login shell.
func (s *session) join(v *state.LiveVM) (int, error) {
	keys, err := WorkspaceKeys(s.ws)
	if err != nil {
		return 0, ExitError{Status: ExitSetup, Err: err}
	}
	user := contract.DefaultUser
	if s.opts.Root {
		user = "root"
	}
	tty := liveclient.StdinTerminal()
	streams := liveclient.Streams{Stdin: s.io.Stdin, Stdout: s.io.Stdout, Stderr: s.io.Stderr, Terminal: tty}
	if len(s.opts.Command) == 0 && tty != nil && v.Hold {
		return Attach(s.io, s.ws, v, keys, user, s.cfg.Live.DetachKeys, "")
	}
	o := liveclient.ExecOptions{
		Command: s.opts.Command, Env: GuestEnv(s.opts.Env, os.Environ()), User: user,
		TTY: tty != nil, Stdin: true, Term: s.io.Getenv("TERM"),
	}
	status, err := liveclient.Exec(v.Task, keys, o, streams)
	if err != nil {
		return 0, ExitError{Status: ExitSetup, Err: err}
	}
	return status, nil
}

// Attach attaches the terminal to v's held main session; detachKeys is
// the config's or the flag's ("" : the default). A detach prints how to
// come back and returns 0. When the session itself ends, a VM that is not
// detached ends with it (unless other sessions keep it up): Attach returns
// once it is down (awaitDown), so that the next loftd in the workspace
// boots its own VM.
func Attach(e IO, ws state.Workspace, v *state.LiveVM, keys *liveclient.Keys, user, detachKeys, flagKeys string) (int, error) {
	spec := liveclient.DefaultDetachKeys
	if detachKeys != "" {
		spec = detachKeys
	}
	if flagKeys != "" {
		spec = flagKeys
	}
	seq, err := liveclient.ParseDetachKeys(spec)
	if err != nil {
		return 0, Usagef("%v", err)
	}
	tty := liveclient.StdinTerminal()
	streams := liveclient.Streams{Stdin: e.Stdin, Stdout: e.Stdout, Stderr: e.Stderr, Terminal: tty}
	status, err := liveclient.Attach(v.Task, keys, user, seq, streams, e.Getenv("TERM"))
	if errors.Is(err, liveclient.ErrDetached) {
		fmt.Fprintf(e.Stderr, "\r\n%s: detached; the VM keeps running (%s attach to come back, %s stop to end it)\r\n", e.Prog, e.Prog, e.Prog)
		return 0, nil
	}
	if err != nil {
		return 0, ExitError{Status: ExitSetup, Err: err}
	}
	// A detached VM outlives its main session (the end rule,
	// guestinit/live.go): `stop` or its idle timeout ends it.
	if !v.Detached && !awaitDown(ws, v, endWait) {
		e.Log.Debug("the VM still runs after its held session ended", "task", v.Task)
	}
	return status, nil
}

// keepsUp says whether sessions keep a VM up once its held main session
// ended: the main session and attachments to it do not (an attachment,
// this one's own included, is still listed until the guest sees it close).
func keepsUp(sessions []contract.LiveSession) bool {
	for _, s := range sessions {
		if s.Kind != "main" && s.Kind != "attach" {
			return true
		}
	}
	return false
}

// endWait bounds awaitDown: a VM ends in well under a second under KVM and
// a few seconds under TCG; one that takes longer is left to its owner.
const endWait = 30 * time.Second

// awaitDown waits, after v's held main session ended, until the workspace
// has no VM: its lock is free, taken only by a VM's owner (prepareDisks).
// Without it `agentbox; loftd -- make` found the record of a VM still
// shutting down, joined it and failed "ssh: handshake failed: EOF". It
// returns early, false, when sessions of others keep the VM up (the end
// rule, guestinit/live.go) or after limit.
func awaitDown(ws state.Workspace, v *state.LiveVM, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l, err := disks.Lock(ws.Lock(), false); err == nil {
			l.Close()
			return true
		}
		if rep, err := live.Ask(v.Task, live.Request{Op: live.OpSessions}); err == nil && keepsUp(rep.Sessions) {
			return false
		}
	}
	return false
}

// readyNotifier is a background VM owner's one report to the loftd that
// spawned it, on an inherited pipe: "ready", or why it is not.
type readyNotifier struct {
	mu   sync.Mutex
	f    *os.File
	sent bool
}

func newReadyNotifier(fd int) *readyNotifier {
	return &readyNotifier{f: os.NewFile(uintptr(fd), "ready-fd")}
}

func (n *readyNotifier) send(err error) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sent || n.f == nil {
		return
	}
	n.sent = true
	msg := "ready\n"
	if err != nil {
		msg = "error: " + err.Error() + "\n"
	}
	_, _ = n.f.WriteString(msg)
	n.f.Close()
}

// ended reports a session that ended before it was ready.
func (n *readyNotifier) ended(status int, err error) {
	if n == nil {
		return
	}
	if err == nil {
		err = fmt.Errorf("the VM ended (status %d) before it was ready", status)
	}
	n.send(err)
}

// sourceFile, in a workspace's state directory, names its project
// directory, so that ssh-proxy can start the VM from its alias alone.
const sourceFile = "source"

// RecordSource writes the workspace's project directory into its state.
func RecordSource(ws state.Workspace) error {
	if err := os.WriteFile(filepath.Join(ws.Dir, sourceFile), []byte(ws.Source), 0o600); err != nil {
		return fmt.Errorf("record the workspace: %w", err)
	}
	return ownByUser(filepath.Join(ws.Dir, sourceFile))
}

// WorkspaceByAlias finds the workspace whose HostKeyAlias is alias.
func WorkspaceByAlias(st state.State, alias string) (state.Workspace, error) {
	name, ok := strings.CutPrefix(alias, "loftd-")
	if !ok || name == "" || strings.ContainsAny(name, "/.") {
		return state.Workspace{}, Usagef("%q is not a loftd ssh host (see %s)", alias, "loftd ssh-config")
	}
	dir := filepath.Join(st.Workspaces(), name)
	src, err := os.ReadFile(filepath.Join(dir, sourceFile))
	if err != nil {
		return state.Workspace{}, fmt.Errorf("ssh host %s: no such workspace (run loftd ssh-config in its directory): %w", alias, err)
	}
	ws := st.Workspace(string(src))
	if ws.Dir != dir {
		return state.Workspace{}, fmt.Errorf("ssh host %s: its record names %s, another workspace", alias, src)
	}
	return ws, nil
}

// startFlagsFile keeps the session flags `ssh-config … -- FLAGS` gave for
// the VM that ssh-proxy starts (the image, memory, …), so that the
// ProxyCommand line carries none of them.
const startFlagsFile = "start-flags.json"

// WriteStartFlags records flags for ReadStartFlags (none: remove them).
func WriteStartFlags(ws state.Workspace, flags []string) error {
	p := filepath.Join(ws.Dir, startFlagsFile)
	if len(flags) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("ssh-config: %w", err)
		}
		return nil
	}
	data, err := json.Marshal(flags)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return fmt.Errorf("ssh-config: %w", err)
	}
	return ownByUser(p)
}

// ReadStartFlags returns the flags WriteStartFlags recorded.
func ReadStartFlags(ws state.Workspace) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(ws.Dir, startFlagsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh-proxy: %w", err)
	}
	var flags []string
	if err := json.Unmarshal(data, &flags); err != nil {
		return nil, fmt.Errorf("ssh-proxy: %s: %w", startFlagsFile, err)
	}
	return flags, nil
}
