package host

import (
	"strings"

	"github.com/loftd/loftd/host/session"
)

// session parses the flags of a VM session and runs it (host/session).
func (e *env) session(args []string) (int, error) {
	fs := e.newFlagSet(e.Prog, "")
	fs.SetInterspersed(false)
	var r session.Flags
	r.Register(fs)
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { e.rootUsage(fs) }
	if err := e.parse(fs, args); err != nil {
		return 0, err
	}
	if *version {
		return 0, runVersion(e, nil)
	}
	rest := fs.Args()
	if len(rest) > 0 && fs.ArgsLenAtDash() != 0 {
		return 0, session.Usagef("unknown command %q (to run it in a VM: %s -- %s)", rest[0], e.Prog, strings.Join(rest, " "))
	}
	cfg, err := session.ReadConfig(e.IO)
	if err != nil {
		return 0, err
	}
	opts, err := r.Options(fs, cfg, rest)
	if err != nil {
		return 0, session.Usagef("%v", err)
	}
	opts.Profile = e.Prog
	return session.Start(e.IO, opts, cfg)
}
