package session

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// TestCheckPublishOverlaps: two publishes that would bind one host port
// (same protocol, overlapping host ports, overlapping addresses) are a
// usage error naming both and the port; anything else passes.
func TestCheckPublishOverlaps(t *testing.T) {
	tests := []struct {
		specs   []string
		wantErr string // "" = accepted
	}{
		{[]string{"8080:80", "8080:81"}, "host port 8080/tcp is published twice"},
		{[]string{"8080:80", "8080:80"}, "host port 8080/tcp is published twice"},
		{[]string{"8000-8010:80-90", "8005:22"}, "host port 8005/tcp"},
		{[]string{"8000-8010:80-90", "8008-8020:100-112"}, "host port 8008-8010/tcp"},
		{[]string{"127.0.0.1:8080:80", "8080:81"}, "published twice"},
		{[]string{"0.0.0.0:8080:80", "127.0.0.1:8080:81"}, "published twice"},
		{[]string{"[::]:8080:80", "127.0.0.1:8080:81"}, "published twice"},
		{[]string{"5353:53/udp", "5353:53/udp"}, "host port 5353/udp"},
		{[]string{"8080:80", "8081:80"}, ""},
		{[]string{"8080:80/tcp", "8080:80/udp"}, ""},
		{[]string{"127.0.0.1:8080:80", "127.0.0.2:8080:81"}, ""},
		{[]string{"0.0.0.0:8080:80", "[::1]:8080:81"}, ""},
		{[]string{"8000-8010:80-90", "8011-8020:91-100"}, ""},
	}
	for _, tt := range tests {
		var pms []PortMap
		for _, s := range tt.specs {
			pm, err := ParsePublish(s)
			if err != nil {
				t.Fatalf("ParsePublish(%q) = %v", s, err)
			}
			pms = append(pms, pm)
		}
		err := checkPublishOverlaps(pms)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("checkPublishOverlaps(%q) = %v, want nil", tt.specs, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUsage)):
			t.Errorf("checkPublishOverlaps(%q) = %v, want a usage error with %q", tt.specs, err, tt.wantErr)
		}
	}
}

// TestHostPortError: a bind refused below the privileged-port limit names
// the limit and its fixes, not a busy port; other failures say "not free".
func TestHostPortError(t *testing.T) {
	pm, err := ParsePublish("80:8000")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		port, start int
		err         error
		want        []string
	}{
		{80, 1024, syscall.EACCES, []string{"host port 80 is privileged", "net.ipv4.ip_unprivileged_port_start (1024)", "-p 8080:8000", "sudo sysctl net.ipv4.ip_unprivileged_port_start=80"}},
		{80, 1024, syscall.EADDRINUSE, []string{"host port :80/tcp is not free"}},
		{80, 80, syscall.EACCES, []string{"is not free"}},
	}
	for _, tt := range tests {
		got := hostPortError(pm, ":80", tt.port, fmt.Errorf("listen: %w", tt.err), tt.start).Error()
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("hostPortError(port %d, start %d, %v) = %q, want %q in it", tt.port, tt.start, tt.err, got, w)
			}
		}
	}
}
