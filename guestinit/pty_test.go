package guestinit

import (
	"bytes"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestStdioPty: a workload started on the init's pty (own session, pty as
// controlling terminal) sees the size set on the master, reads what is
// relayed into it with the line discipline's echo, and everything it
// writes is copied out and counted up to its end (EIO on the master).
func TestStdioPty(t *testing.T) {
	p, err := openPty("/")
	if err != nil {
		t.Fatal(err)
	}
	p.setSize(24, 80)
	inR, inW := io.Pipe()
	var out bytes.Buffer
	cnt := &counter{w: &out}
	p.start(inR, cnt)
	go func() { _, _ = inW.Write([]byte("abc\n")) }()
	// /dev/tty opens only for a process with a controlling terminal.
	script := `stty size; read x; echo "got $x"; (: </dev/tty) 2>/dev/null && echo ctty-ok; exit 5`
	files := []*os.File{p.slave, p.slave, p.slave}
	var errb bytes.Buffer
	status := runCommand([]string{"sh", "-c", script}, "/", files,
		&syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}, &errb)
	p.drain(false)
	inW.Close()
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	if status != 5 {
		t.Errorf("status %d, want 5 (%s)", status, errb.String())
	}
	for _, want := range []string{"24 80\n", "abc\n", "got abc\n", "ctty-ok\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("pty output %q lacks %q", got, want)
		}
	}
	if cnt.count() != int64(out.Len()) {
		t.Errorf("counted %d bytes, relayed %d", cnt.count(), out.Len())
	}
}
