package guestinit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The guest's syslog: the guest has no syslog daemon, so the init keeps
// /dev/log itself and appends what arrives to SyslogLog.
const (
	SyslogLog    = "/run/loftd/syslog.log"
	syslogSocket = "/dev/log"
	// syslogMax bounds SyslogLog (it is in /run, guest memory); later
	// messages are counted and dropped.
	syslogMax = 4 << 20
)

// listenSyslog binds /dev/log, unless something in the guest already
// has. Why Podman needs it: `podman --log-level=debug run` passes --syslog
// to conmon and to conmon's exit command (`podman container cleanup`),
// and a Podman 4 given --syslog with no /dev/log exits at once. The
// container then never reaches the exited state, and the foreground
// `podman run` waits out its 20 s conmon timeout on every container
// (default image, TCG: 26 s against 9-10 s per debug run).
func (d *diskPrep) listenSyslog() error {
	full := d.path(syslogSocket)
	if _, err := os.Lstat(full); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: full, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("listen %s: %w", syslogSocket, err)
	}
	// Every user logs; datagrams carry no path the sender controls.
	if err := os.Chmod(full, 0o666); err != nil {
		conn.Close()
		return fmt.Errorf("chmod %s: %w", syslogSocket, err)
	}
	fd, err := unix.Open(d.path(SyslogLog), unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		conn.Close()
		return fmt.Errorf("open %s: %w", SyslogLog, err)
	}
	go drainSyslog(conn, os.NewFile(uintptr(fd), SyslogLog), syslogMax)
	return nil
}

// drainSyslog appends each datagram of conn to out as one line, until
// max bytes were written; it reads on after that, so that senders never
// block, and drops what does not fit. It returns when conn fails.
func drainSyslog(conn *net.UnixConn, out io.WriteCloser, max int64) {
	defer out.Close()
	buf := make([]byte, 64<<10)
	var written, dropped int64
	for {
		n, _, err := conn.ReadFrom(buf[:len(buf)-1])
		if err != nil {
			if dropped > 0 {
				fmt.Fprintf(out, "loftd: %d syslog messages dropped past %d bytes\n", dropped, max)
			}
			if !errors.Is(err, net.ErrClosed) {
				fmt.Fprintf(out, "loftd: syslog: %v\n", err)
			}
			return
		}
		line := buf[:n]
		if n == 0 || line[n-1] != '\n' {
			line = append(line, '\n') // within buf: one byte was kept free
		}
		if written+int64(len(line)) > max {
			dropped++
			continue
		}
		w, _ := out.Write(line)
		written += int64(w)
	}
}
