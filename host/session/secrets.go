package session

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/loftd/loftd/contract"
	"github.com/loftd/loftd/egress/mitm"
	"github.com/loftd/loftd/launch"
	"github.com/loftd/loftd/rootfs/inroot"
)

// SecretConfig is one [secrets.NAME] table: the file that holds the value
// and the hosts it may go to.
type SecretConfig struct {
	File  string   `toml:"file"`
	Hosts []string `toml:"hosts"`
}

// TLSConfig is [tls]: extra CA certificates for the guest's trust store
// and for verifying real servers behind the interception.
type TLSConfig struct {
	ExtraCA []string `toml:"extra_ca"`
}

// SecretSpec is one secret after flags and config merged: its name (the
// guest variable), the absolute path of its file and its hosts.
type SecretSpec struct {
	Name  string
	File  string
	Hosts []string
}

// parseSecrets reads [secrets] and then each --secret (a flag for a name
// the config has replaces its file, and its hosts when it names any), and
// [tls] extra_ca then --extra-ca. Each secret's file is read once here, so
// a missing or bad one fails before anything boots.
func (o *Options) parseSecrets(cfg *Config, r *Flags, getenv func(string) string) error {
	byName := map[string]*SecretSpec{}
	var names []string
	add := func(name, file string, hosts []string, where string) error {
		abs, err := absPath(file, getenv)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		s := byName[name]
		if s == nil {
			s = &SecretSpec{Name: name}
			byName[name] = s
			names = append(names, name)
		}
		s.File = abs
		if len(hosts) > 0 {
			s.Hosts = hosts
		}
		return nil
	}
	cfgNames := make([]string, 0, len(cfg.Secrets))
	for name := range cfg.Secrets {
		cfgNames = append(cfgNames, name)
	}
	slices.Sort(cfgNames)
	for _, name := range cfgNames {
		c := cfg.Secrets[name]
		if c.File == "" {
			return fmt.Errorf("%s: [secrets.%s]: no file; add file = \"/path/to/token\"", cfg.file(), name)
		}
		if !filepath.IsAbs(c.File) && !strings.HasPrefix(c.File, "~/") {
			return fmt.Errorf("%s: [secrets.%s] file %q: want an absolute path or one starting with ~/ (a relative one would depend on the current directory)", cfg.file(), name, c.File)
		}
		if err := add(name, c.File, c.Hosts, fmt.Sprintf("%s: [secrets.%s] file", cfg.file(), name)); err != nil {
			return err
		}
	}
	for _, spec := range r.secrets {
		name, file, hosts, err := ParseSecretFlag(spec)
		if err != nil {
			return err
		}
		if err := add(name, file, hosts, "--secret "+spec); err != nil {
			return err
		}
	}
	reserved := map[string]bool{}
	for _, e := range o.Env {
		n, _, _ := strings.Cut(e, "=")
		reserved[n] = true
	}
	for _, name := range names {
		s := byName[name]
		if strings.HasPrefix(name, "LOFTD_") {
			return fmt.Errorf("secret %s: LOFTD_* names are reserved for loftd; rename it", name)
		}
		if reserved[name] {
			return fmt.Errorf("secret %s is also passed with --env (or [env] pass): the guest would see two values; drop one", name)
		}
		value, err := mitm.ReadSecretFile(name, s.File)
		if err != nil {
			return err
		}
		if _, err := mitm.NewSecret(name, value, s.Hosts); err != nil {
			return err
		}
		o.Secrets = append(o.Secrets, *s)
	}
	if len(o.Secrets) > 0 && o.Network != launch.NetworkEgress {
		return fmt.Errorf("--secret (or [secrets]) needs loftd's egress network, which replaces the placeholders: --network %s cannot; drop --network or the secrets", o.Network)
	}
	for i, f := range append(append([]string{}, cfg.TLS.ExtraCA...), r.extraCA...) {
		if i < len(cfg.TLS.ExtraCA) && !filepath.IsAbs(f) && !strings.HasPrefix(f, "~/") {
			return fmt.Errorf("%s: [tls] extra_ca %q: want an absolute path or one starting with ~/", cfg.file(), f)
		}
		abs, err := absPath(f, getenv)
		if err == nil {
			_, _, err = mitm.ExtraCAs([]string{abs})
		}
		if err != nil {
			return cfg.keyError(i < len(cfg.TLS.ExtraCA), "[tls] extra_ca", "--extra-ca", err)
		}
		o.ExtraCA = append(o.ExtraCA, abs)
	}
	return nil
}

// ParseSecretFlag reads --secret NAME=@FILE[:HOST,...]. The value comes
// from a file only: one on the command line is in every process listing.
// FILE ends at the last ':', so a path with a ':' needs the hosts given.
func ParseSecretFlag(s string) (name, file string, hosts []string, err error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return "", "", nil, fmt.Errorf("--secret %q: want NAME=@FILE[:HOST,...]", s)
	}
	rest, ok = strings.CutPrefix(rest, "@")
	if !ok {
		return "", "", nil, fmt.Errorf("--secret %s: the value must come from a file (NAME=@FILE): one on the command line is seen by every process (ps)", name)
	}
	file = rest
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		file = rest[:i]
		for _, h := range strings.Split(rest[i+1:], ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
	}
	if file == "" {
		return "", "", nil, fmt.Errorf("--secret %s: no file after @", name)
	}
	return name, file, hosts, nil
}

// absPath makes a user's path absolute (the netstack reads it later, from
// another working directory); ~/ is the home directory.
func absPath(p string, getenv func(string) string) (string, error) {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home := homeDir(getenv)
		if home == "" {
			return "", fmt.Errorf("%s: HOME is not set", p)
		}
		p = filepath.Join(home, rest)
	}
	return filepath.Abs(p)
}

// prepareTrust makes the secrets' placeholders and puts the CAs the guest
// must trust on the task root: the workspace's interception CA (made once,
// in its state directory) when there are secrets, and the --extra-ca
// certificates. The netstack gets the rest through the plan (intercept).
func (s *session) prepareTrust() error {
	if len(s.opts.Secrets) == 0 && len(s.opts.ExtraCA) == 0 {
		return nil
	}
	var bundle bytes.Buffer
	if len(s.opts.Secrets) > 0 {
		ca, err := mitm.LoadOrCreateCA(s.ws.Dir)
		if err != nil {
			return err
		}
		if err := ownByUser(filepath.Join(s.ws.Dir, mitm.CertFile), filepath.Join(s.ws.Dir, mitm.KeyFile)); err != nil {
			return err
		}
		bundle.Write(ca.PEM)
		in := &launch.Intercept{CADir: s.ws.Dir, ExtraCA: s.opts.ExtraCA}
		for _, spec := range s.opts.Secrets {
			value, err := mitm.ReadSecretFile(spec.Name, spec.File)
			if err != nil {
				return err
			}
			sec, err := mitm.NewSecret(spec.Name, value, spec.Hosts)
			if err != nil {
				return err
			}
			in.Secrets = append(in.Secrets, launch.Secret{Name: sec.Name, File: spec.File, Placeholder: sec.Placeholder, Hosts: sec.Hosts})
			s.secretEnv = append(s.secretEnv, sec.Name+"="+sec.Placeholder)
		}
		s.intercept = in
	}
	_, extra, err := mitm.ExtraCAs(s.opts.ExtraCA)
	if err != nil {
		return err
	}
	bundle.Write(extra)
	if err := inroot.WriteFile(s.root, contract.TrustPath, &bundle, 0o644); err != nil {
		return fmt.Errorf("write the guest's CA certificates: %w", err)
	}
	s.trust = true
	return nil
}
