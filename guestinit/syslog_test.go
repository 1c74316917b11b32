package guestinit

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSyslogSink: what is sent to the guest's /dev/log lands in the log
// one message a line, up to the bound; senders are never refused.
func TestSyslogSink(t *testing.T) {
	for _, tt := range []struct {
		name string
		msgs []string
		max  int64
		want string
	}{
		{"lines", []string{"<14>podman: one", "<14>two\n"}, 1 << 10, "<14>podman: one\n<14>two\n"},
		{"bounded", []string{"12345", "6789", "x"}, 8, "12345\nx\nloftd: 1 syslog messages dropped past 8 bytes\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "log")
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			out, err := os.Create(filepath.Join(dir, "syslog.log"))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { drainSyslog(conn, out, tt.max); close(done) }()
			c, err := net.Dial("unixgram", sock)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.msgs {
				if _, err := c.Write([]byte(m)); err != nil {
					t.Fatalf("send %q: %v", m, err)
				}
			}
			c.Close()
			// Datagrams are queued in order: the last is read once the
			// socket is empty, so wait for the file, then close.
			last := strings.TrimSuffix(tt.msgs[len(tt.msgs)-1], "\n") + "\n"
			for i := 0; i < 500; i++ {
				if b, _ := os.ReadFile(out.Name()); strings.HasSuffix(string(b), last) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			conn.Close()
			<-done
			got, err := os.ReadFile(out.Name())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("syslog.log = %q, want %q", got, tt.want)
			}
		})
	}
}
