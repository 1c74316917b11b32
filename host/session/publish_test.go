package session

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePublish(t *testing.T) {
	tests := []struct {
		in      string
		want    PortMap
		wantErr string
	}{
		{in: "8080:80", want: PortMap{HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: "tcp"}},
		{in: "8080:80/tcp", want: PortMap{HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: "tcp"}},
		{in: "5353:53/udp", want: PortMap{HostFirst: 5353, HostLast: 5353, GuestFirst: 53, GuestLast: 53, Proto: "udp"}},
		{in: "127.0.0.1:8080:80", want: PortMap{HostIP: "127.0.0.1", HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: "tcp"}},
		{in: "[::1]:8080:80", want: PortMap{HostIP: "::1", HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: "tcp"}},
		{in: "8000-8010:80-90", want: PortMap{HostFirst: 8000, HostLast: 8010, GuestFirst: 80, GuestLast: 90, Proto: "tcp"}},
		{in: "80", wantErr: "no HOST:GUEST pair"},
		{in: "8080:80/sctp", wantErr: `protocol "sctp"`},
		{in: "0:80", wantErr: "host port"},
		{in: "8080:65536", wantErr: "guest port"},
		{in: "8000-8010:80-85", wantErr: "differ in length"},
		{in: "8010-8000:80-90", wantErr: "runs backwards"},
		{in: "host:8080:80", wantErr: "not an IP address"},
		{in: "a:b", wantErr: "host port"},
		// Only the canonical address reaches passt's -t spec.
		{in: "[fe80::1%eth0]:8080:80", wantErr: "has a zone"},
		{in: "[fe80::1%x]:8080:80", wantErr: "has a zone"},
		{in: "[::ffff:127.0.0.1]:8080:80", want: PortMap{HostIP: "::ffff:127.0.0.1", HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: "tcp"}},
		{in: "[0:0::1]:8080:80", want: PortMap{HostIP: "::1", HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: "tcp"}},
	}
	for _, tt := range tests {
		got, err := ParsePublish(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--publish") {
				t.Errorf("ParsePublish(%q) error = %v, want one containing %q and naming --publish", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePublish(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseVolume(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// virtiofsd gets an fd, not the path: any byte goes in a source.
	comma := filepath.Join(dir, "a,source=.,xattr\\ \n-x")
	if err := os.Mkdir(comma, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      string
		want    Volume
		wantErr string
	}{
		{in: dir + ":/dst", want: Volume{Source: dir, Target: "/dst"}},
		{in: dir + ":/dst/:ro", want: Volume{Source: dir, Target: "/dst", ReadOnly: true}},
		{in: dir + ":/dst:rw", want: Volume{Source: dir, Target: "/dst"}},
		{in: file + ":/etc/f:ro", want: Volume{Source: file, Target: "/etc/f", ReadOnly: true, File: true}},
		{in: dir, wantErr: "wrong number of fields"},
		{in: dir + ":dst", wantErr: "not an absolute guest path"},
		{in: dir + ":/dst:rx", wantErr: `option "rx"`},
		{in: ":/dst", wantErr: "empty source"},
		{in: dir + "/missing:/dst", wantErr: "no such file"},
		{in: "/dev/null:/dst", wantErr: "neither a directory nor a regular file"},
		{in: comma + ":/dst", want: Volume{Source: comma, Target: "/dst"}},
		{in: dir + ":/", wantErr: "hide the guest's root"},
		{in: dir + ":/sys/fs/x", wantErr: "under /sys"},
		{in: dir + ":/dev", wantErr: "under /dev"},
		{in: dir + ":/a,b", wantErr: "comma"},
		// Issue 17 item 8: the workspace's own share is not a volume target.
		{in: dir + ":/workspace", wantErr: "is the workspace"},
		{in: dir + ":/workspace/", wantErr: "is the workspace"},
		{in: file + ":/workspace/sub/f", wantErr: "is the workspace"},
		{in: dir + ":/workspaces", want: Volume{Source: dir, Target: "/workspaces"}},
	}
	for _, tt := range tests {
		got, err := ParseVolume(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseVolume(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseVolume(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
}
