package session

import (
	"testing"

	"github.com/loftd/loftd/contract"
)

func TestParseIdleTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"90s", 90, false},
		{"30m", 1800, false},
		{"1500ms", 2, false}, // whole seconds, rounded up
		{"-5s", 0, true},
		{"soon", 0, true},
		{"10", 0, true}, // a unit is required
	}
	for _, tt := range tests {
		got, err := ParseIdleTimeout(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseIdleTimeout(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestKeepsUp(t *testing.T) {
	s := func(kinds ...string) []contract.LiveSession {
		var l []contract.LiveSession
		for _, k := range kinds {
			l = append(l, contract.LiveSession{Kind: k})
		}
		return l
	}
	for _, c := range []struct {
		sessions []contract.LiveSession
		want     bool
	}{
		{nil, false},
		{s("main"), false},
		{s("main", "attach", "attach"), false},
		{s("attach", "exec"), true},
		{s("shell"), true},
		{s("sftp"), true},
		{s("forward"), true},
		{s("agent"), true},
	} {
		if got := keepsUp(c.sessions); got != c.want {
			t.Errorf("keepsUp(%v) = %v, want %v", c.sessions, got, c.want)
		}
	}
}
