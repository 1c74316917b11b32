package guestinit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/loftd/loftd/contract"
)

// readConfig reads /.krun_config.json strictly and the LOFTD_* contract in
// its Env. As PID 1 under QEMU the kernel passed neither arguments nor the
// environment, so both come from the file: Cmd is this init's own argv.
// Under libkrun the environment is the process's own (libkrun's init set
// it from the same file). On both, the defaults fill what the host left out.
func (e *enter) readConfig() error {
	data, err := e.sys.ReadFile(e.devPath(contract.KrunConfigPath))
	if err != nil {
		return err
	}
	cfg, err := decodeConfig(data)
	if err != nil {
		return err
	}
	e.cfg = cfg
	if e.fromConfig {
		if len(cfg.Cmd) < 2 || cfg.Cmd[1] != "enter" {
			return fmt.Errorf("%s: Cmd %q does not run %q", contract.KrunConfigPath, cfg.Cmd, "enter")
		}
		if e.cmd, err = parseEnterArgs(cfg.Cmd[2:]); err != nil {
			return err
		}
		e.sys.SetEnv(withDefaults(cfg.Env))
	} else {
		e.sys.SetEnv(withDefaults(e.sys.Environ()))
	}
	if e.guest, err = contract.Parse(cfg.Env); err != nil {
		return err
	}
	if e.guest.Mode != contract.ModeEnter && e.guest.Mode != contract.ModeResize && e.guest.Mode != contract.ModeSnapshot {
		return fmt.Errorf("%s=%s is not implemented by this guest init", contract.EnvMode, e.guest.Mode)
	}
	e.profile = e.profile || e.guest.Profile
	return nil
}

func decodeConfig(data []byte) (contract.KrunConfig, error) {
	var cfg contract.KrunConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("decode %s: %w", contract.KrunConfigPath, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return cfg, fmt.Errorf("decode %s: data after the JSON object", contract.KrunConfigPath)
	}
	return cfg, nil
}

// defaultEnv is what a workload finds when the host passed no value: libkrun
// and QEMU both start the guest with an empty environment, and a command
// looked up without PATH is "not found".
var defaultEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"TERM=linux",
	"LANG=C.UTF-8",
}

// withDefaults appends each of defaultEnv whose name env does not set.
func withDefaults(env []string) []string {
	set := map[string]bool{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	out := append([]string(nil), env...)
	for _, kv := range defaultEnv {
		name, _, _ := strings.Cut(kv, "=")
		if !set[name] {
			out = append(out, kv)
		}
	}
	return out
}
