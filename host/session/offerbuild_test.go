package session

import (
	"strings"
	"testing"
)

func TestAskYes(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"\n", true}, {"y\n", true}, {"Yes\n", true}, {"  y  \n", true},
		{"n\n", false}, {"no\n", false}, {"maybe\n", false},
		{"", false}, // EOF before any answer: not a yes
		{"y", true}, // an answer without its newline still counts
	}
	for _, tt := range tests {
		if got, err := askYes(strings.NewReader(tt.in)); err != nil || got != tt.want {
			t.Errorf("askYes(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
