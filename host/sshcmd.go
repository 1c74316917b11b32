package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/helper/live"
	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/host/state"
)

// sshSafe are the paths ssh-config may write into an ssh_config: ssh
// expands % and ~ in them and ProxyCommand goes through a shell, so a
// path is written only when it has none of that to quote.
var sshSafe = regexp.MustCompile(`^[A-Za-z0-9/._+@,=-]+$`)

// runSSHConfig is `loftd ssh-config [--install] [WORKSPACE]`.
func runSSHConfig(e *env, args []string) error {
	fs := e.newFlagSet("ssh-config", e.Prog+" ssh-config [--install] [WORKSPACE] [-- START FLAGS…]")
	install := fs.Bool("install", false, "write the block to ~/.ssh/loftd.d/HOST.conf and Include it from ~/.ssh/config (once)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	pos, start := fs.Args(), []string(nil)
	if at := fs.ArgsLenAtDash(); at >= 0 {
		pos, start = fs.Args()[:at], fs.Args()[at:]
	}
	if len(pos) > 1 {
		return session.Usagef("ssh-config: want at most one WORKSPACE (session flags for the VM ssh-proxy starts go after --)")
	}
	cfg, err := session.ReadConfig(e.IO)
	if err != nil {
		return err
	}
	st, err := session.OpenState(e.IO, cfg)
	if err != nil {
		return err
	}
	dir := "."
	if len(pos) == 1 {
		dir = pos[0]
	}
	src, err := state.FindWorkspace(dir)
	if err != nil {
		return err
	}
	ws := st.Workspace(src)
	if err := os.MkdirAll(ws.Dir, 0o700); err != nil {
		return fmt.Errorf("ssh-config: %w", err)
	}
	keys, err := session.WorkspaceKeys(ws)
	if err != nil {
		return err
	}
	if err := keys.WriteKnownHosts(); err != nil {
		return err
	}
	if err := session.RecordSource(ws); err != nil {
		return err
	}
	if err := session.WriteStartFlags(ws, start); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("ssh-config: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("ssh-config: %w", err)
	}
	for _, p := range []string{exe, keys.ClientKeyPath(), keys.KnownHostsPath()} {
		if !sshSafe.MatchString(p) {
			return fmt.Errorf("ssh-config: the path %q has characters ssh_config would expand or a shell would split; move loftd or its state directory ([state] location) to a plain path", p)
		}
	}
	alias := keys.HostKeyAlias
	block := fmt.Sprintf(`Host %[1]s
  HostName %[1]s
  User %[2]s
  ProxyCommand %[3]s ssh-proxy %[1]s
  IdentityFile %[4]s
  IdentitiesOnly yes
  UserKnownHostsFile %[5]s
  StrictHostKeyChecking yes
  HostKeyAlias %[1]s
`, alias, contract.DefaultUser, exe, keys.ClientKeyPath(), keys.KnownHostsPath())
	if !*install {
		_, err := io.WriteString(e.Stdout, block)
		return err
	}
	return installSSHConfig(e, alias, block)
}

// includeLine is what --install adds to ~/.ssh/config, at its top (an
// Include after a Host line would apply only inside that block).
const includeLine = "Include ~/.ssh/loftd.d/*.conf"

func installSSHConfig(e *env, alias, block string) error {
	home := e.Getenv("HOME")
	if home == "" {
		return errors.New("ssh-config --install: HOME is not set")
	}
	sshDir := filepath.Join(home, ".ssh")
	confDir := filepath.Join(sshDir, "loftd.d")
	if err := os.MkdirAll(confDir, 0o700); err != nil {
		return fmt.Errorf("ssh-config --install: %w", err)
	}
	file := filepath.Join(confDir, alias+".conf")
	if err := os.WriteFile(file, []byte(block), 0o600); err != nil {
		return fmt.Errorf("ssh-config --install: %w", err)
	}
	main := filepath.Join(sshDir, "config")
	old, err := os.ReadFile(main)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ssh-config --install: %w", err)
	}
	for _, l := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(l) == includeLine {
			fmt.Fprintf(e.Stdout, "wrote %s (already included from %s); connect with: ssh %s\n", file, main, alias)
			return nil
		}
	}
	data := append([]byte(includeLine+"\n\n"), old...)
	if err := os.WriteFile(main, data, 0o600); err != nil {
		return fmt.Errorf("ssh-config --install: %w", err)
	}
	fmt.Fprintf(e.Stdout, "wrote %s and included it from %s; connect with: ssh %s\n", file, main, alias)
	return nil
}

// runSSHProxy is OpenSSH's ProxyCommand: `loftd ssh-proxy HOST` starts the
// workspace VM HOST names (detached) when none runs, then carries stdin
// and stdout to a tunnel: ssh talks to the guest's server end to end.
func runSSHProxy(e *env, args []string) error {
	fs := e.newFlagSet("ssh-proxy", e.Prog+" ssh-proxy HOST")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return session.Usagef("ssh-proxy: want the HOST of ssh-config's block")
	}
	cfg, err := session.ReadConfig(e.IO)
	if err != nil {
		return err
	}
	st, err := session.OpenState(e.IO, cfg)
	if err != nil {
		return err
	}
	ws, err := session.WorkspaceByAlias(st, fs.Arg(0))
	if err != nil {
		return err
	}
	v, err := session.FindLive(ws)
	if err != nil {
		return err
	}
	if v == nil {
		e.Log.Debug("ssh-proxy: starting the workspace VM", "workspace", ws.Source)
		flags, err := session.ReadStartFlags(ws)
		if err != nil {
			return err
		}
		args := append(append([]string{"-d"}, flags...), "--workspace", ws.Source)
		if err := session.SpawnOwner(e.IO, args, session.BackgroundDetached); err != nil {
			return err
		}
		if v, err = session.FindLive(ws); err != nil || v == nil {
			return fmt.Errorf("ssh-proxy: the workspace VM started but cannot be found (%v)", err)
		}
	}
	c, err := live.DialTunnel(v.Task)
	if err != nil {
		return err
	}
	defer c.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(c, e.Stdin)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	})
	_, err = io.Copy(e.Stdout, c)
	return err
}
