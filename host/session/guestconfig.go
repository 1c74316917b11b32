package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/rootfs"
	"github.com/loftd/loftd/rootfs/inroot"
)

// The guest's side of a session: the guest init and its config
// (/.krun_config.json), the single-file volumes, and the typed guest
// environment (contract.Guest) the init reads.

// writeVolumes tells the guest which shares to mount where, and copies the
// single-file volumes into the task root.
func (s *session) writeVolumes() error {
	_, mounts := volumeShares(s.opts.Volumes)
	if env := contract.VolumesEnv(mounts); env != "" {
		s.kc.Env = append(s.kc.Env, env)
	}
	_, _, inside := rootfs.KeepIDUser()
	return copyVolumeFiles(s.root, s.opts.Volumes, s.id, os.Geteuid() == 0 && !inside)
}

// writeGuestConfig injects the guest init and writes /.krun_config.json.
func (s *session) writeGuestConfig() error {
	if err := injectGuestInit(s.root, s.opts.GuestInit); err != nil {
		return err
	}
	if err := prepareKrunRoot(s.root, s.opts.KrunInit); err != nil {
		return err
	}
	s.kc = contract.KrunConfig{
		Cmd: append([]string{contract.GuestInitPath, "enter", "--"}, s.command()...),
		Env: slices.Concat(s.guest().Env(), GuestEnv(s.opts.Env, os.Environ()), s.secretEnv),
		// "/": libkrun's init chdirs here before /workspace is mounted;
		// the guest init applies LOFTD_WORKDIR after its mounts.
		WorkingDir: "/",
	}
	if err := s.writeVolumes(); err != nil {
		return err
	}
	if err := s.writeSSHFiles(); err != nil {
		return err
	}
	if s.opts.Hold && !interactive() {
		// The held pty's programs draw for the terminals that attach:
		// the starting one's TERM is the best guess.
		if term := s.io.Getenv("TERM"); term != "" {
			s.kc.Env = append(s.kc.Env, "TERM="+term)
		}
	}
	if err := s.prepareBootstrap(); err != nil { // bootstrap.go
		return err
	}
	if interactive() {
		if term := os.Getenv("TERM"); term != "" {
			s.kc.Env = append(s.kc.Env, "TERM="+term)
		}
	}
	// No HTML escaping: libkrun's init reads the file with a small C
	// decoder (jsmn + init.c unescape_string); <, > and & as plain bytes
	// leave it less to decode than \u003c and friends.
	var data bytes.Buffer
	enc := json.NewEncoder(&data)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.kc); err != nil {
		return fmt.Errorf("write guest config: %w", err)
	}
	// The root is the task's private copy of a tree the image or the
	// --rootfs directory controls: never follow a symlink planted there.
	if err := inroot.WriteFile(s.root, contract.KrunConfigPath, &data, 0o644); err != nil {
		return fmt.Errorf("write guest config: %w", err)
	}
	return nil
}

// command is the workload; none means the guest user's login shell,
// which only the guest knows (from its /etc/passwd).
func (s *session) command() []string {
	return s.opts.Command
}

func (s *session) guest() contract.Guest {
	uid, gid := s.id.guestUID, s.id.guestGID
	return contract.Guest{
		Mode: contract.ModeEnter, UID: uid, GID: gid, User: contract.DefaultUser,
		Root: s.opts.Root, WorkspaceTag: contract.WorkspaceTag,
		NixDisk: contract.NixDiskID, ContainersDisk: contract.ContainersDiskID,
		Network: s.opts.Network.String(), Profile: s.opts.ProfileOut,
		TTY: interactive(), Workdir: contract.WorkspaceMount,
		Hostname: s.hostname(), Trust: s.trust,
		Hold: s.opts.Hold, Detached: s.opts.Detach, IdleTimeout: s.opts.IdleTimeout,
	}
}
