package qemu

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// guestEnds plays the guest: it writes on QEMU's ends of the port sockets.
func guestEnds(t *testing.T) (*ports, func(i int, b string), *bufio.Reader) {
	t.Helper()
	p, err := newPorts()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	write := func(i int, b string) {
		if _, err := p.guest[i].Write([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	return p, write, bufio.NewReader(p.guest[3])
}

// readLine reads one control line the host sent, failing after a minute.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() { l, _ := r.ReadString('\n'); ch <- l }()
	select {
	case l := <-ch:
		return l
	case <-time.After(time.Minute):
		t.Fatal("no control line from the host within a minute")
		return ""
	}
}

// TestAckAfterEveryByte: the host acknowledges the status only once it has
// as many bytes of each stream as the guest counted.
func TestAckAfterEveryByte(t *testing.T) {
	p, write, ctl := guestEnds(t)
	var out, errb bytes.Buffer
	wg := p.pump(nil, &out, &errb)
	write(1, "hello ")
	write(3, "3 11 4\n") // 5 bytes of stdout and all of stderr still to come
	acked := make(chan string, 1)
	go func() { acked <- readLine(t, ctl) }()
	write(2, "err\n")
	select {
	case l := <-acked:
		t.Fatalf("host sent %q with 6 of 11 bytes of stdout", l)
	case <-time.After(200 * time.Millisecond):
	}
	write(1, "world")
	if l := <-acked; l != "ack\n" {
		t.Errorf("control line = %q, want ack", l)
	}
	for _, f := range p.guest {
		f.Close()
	}
	wg.Wait()
	if out.String() != "hello world" || errb.String() != "err\n" || p.statusText() != "3 11 4\n" {
		t.Errorf("stdout %q, stderr %q, status %q", out.String(), errb.String(), p.statusText())
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestBrokenWriterClosesStream: a failing stdout or stderr makes the host
// ask the guest to close that stream, and the rest is still counted.
func TestBrokenWriterClosesStream(t *testing.T) {
	for i, name := range streamNames {
		t.Run(name, func(t *testing.T) {
			p, write, ctl := guestEnds(t)
			ws := []io.Writer{io.Discard, io.Discard}
			ws[i] = brokenWriter{}
			wg := p.pump(nil, ws[0], ws[1])
			write(i+1, "y\n")
			if l := readLine(t, ctl); l != "close "+name+"\n" {
				t.Errorf("control line = %q, want close %s", l, name)
			}
			write(i+1, "y\ny\n")
			write(3, "141 "+strings.Repeat("0 ", i)+"6"+strings.Repeat(" 0", 1-i)+"\n")
			if l := readLine(t, ctl); l != "ack\n" {
				t.Errorf("control line = %q, want ack", l)
			}
			p.close()
			wg.Wait()
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		text   string
		status int
		counts []int64
		ok     bool
	}{
		{"0\n", 0, nil, true},
		{"141 10 0\n", 141, []int64{10, 0}, true},
		{"3 1 2", 3, []int64{1, 2}, true},
		{"3 1", 0, nil, false},
		{"3 -1 2", 0, nil, false},
		{"256 0 0", 0, nil, false},
		{"x 0 0", 0, nil, false},
		{"", 0, nil, false},
	}
	for _, tt := range tests {
		status, counts, ok := parseStatus(tt.text)
		if status != tt.status || ok != tt.ok || !slices.Equal(counts, tt.counts) {
			t.Errorf("parseStatus(%q) = %d, %v, %v, want %d, %v, %v", tt.text, status, counts, ok, tt.status, tt.counts, tt.ok)
		}
	}
}

// TestPortWinsize: with a terminal the host sends its size on the status
// port at start and again after every resize signal.
func TestPortWinsize(t *testing.T) {
	p, _, ctl := guestEnds(t)
	sizes := make(chan [2]uint16, 2)
	sizes <- [2]uint16{30, 100}
	sizes <- [2]uint16{40, 120}
	size := func() (uint16, uint16, bool) { s := <-sizes; return s[0], s[1], true }
	resized := make(chan os.Signal, 1)
	stop := p.followSize(size, resized)
	defer stop()
	if got := readLine(t, ctl); got != "winsize 30 100\n" {
		t.Errorf("first control line %q, want the size at start", got)
	}
	resized <- syscall.SIGWINCH
	if got := readLine(t, ctl); got != "winsize 40 120\n" {
		t.Errorf("control line after SIGWINCH %q, want the new size", got)
	}
}
