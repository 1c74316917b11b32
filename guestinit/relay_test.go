package guestinit

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// TestStreamCopy relays 4 MiB, written in uneven pieces, to a port that is
// a pipe (the copy loop: splice only goes to a character device): every
// byte arrives in order, the count is exact, and the copy ends at EOF.
func TestStreamCopy(t *testing.T) {
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, name := range []string{"pipe", "not a file"} {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		var w io.Writer = pw
		if name == "not a file" {
			w = struct{ io.Writer }{pw}
		}
		port := &counter{w: w}
		s, err := newStream(port)
		if err != nil {
			t.Fatal(err)
		}
		go s.copy()
		got := make(chan []byte)
		go func() { b, _ := io.ReadAll(pr); got <- b }()
		go func() {
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 100_000)
				if _, err := s.w.Write(rest[:n]); err != nil {
					t.Error(err)
					break
				}
				rest = rest[n:]
			}
			s.w.Close()
		}()
		<-s.done
		pw.Close()
		if b := <-got; !bytes.Equal(b, data) {
			t.Errorf("%s: relayed %d bytes, not the %d written (or not in order)", name, len(b), len(data))
		}
		if port.count() != int64(len(data)) {
			t.Errorf("%s: counted %d, want %d", name, port.count(), len(data))
		}
		pr.Close()
	}
}

// TestStreamSplice relays to /dev/null, a character device as the ports
// are, so the splice path runs: the count is exact and the copy ends at
// EOF (the bytes themselves are checked over a real port by the e2e tests,
// TestLargeOutputComplete).
func TestStreamSplice(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	port := &counter{w: null}
	s, err := newStream(port)
	if err != nil {
		t.Fatal(err)
	}
	spliced := make(chan bool)
	go func() { spliced <- s.splice() }()
	const total = 3<<20 + 12345
	go func() {
		buf := make([]byte, 70_000)
		for n := 0; n < total; {
			m, err := s.w.Write(buf[:min(len(buf), total-n)])
			if err != nil {
				t.Error(err)
				break
			}
			n += m
		}
		s.w.Close()
	}()
	if !<-spliced {
		t.Fatal("splice into /dev/null fell back to the copy loop")
	}
	if port.count() != total {
		t.Errorf("counted %d, want %d", port.count(), total)
	}
}
