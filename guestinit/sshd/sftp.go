package sshd

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pkg/sftp"
)

// SFTPArg is the guest init's argument that runs SFTPMain: the server
// re-executes the init with it, as the session's user, for the sftp
// subsystem (the guest image need not have an sftp-server).
const SFTPArg = "sftp-server"

// SFTPMain serves SFTP on stdin and stdout until the client ends, in the
// working directory it was started in (the user's home), and returns the
// process's exit status.
func SFTPMain() int {
	srv, err := sftp.NewServer(stdio{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "sftp-server: %v\n", err)
		return 1
	}
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(os.Stderr, "sftp-server: %v\n", err)
		return 1
	}
	return 0
}

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error                { return os.Stdout.Close() }
