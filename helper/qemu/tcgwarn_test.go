package qemu

import (
	"strings"
	"testing"
)

func TestTCGWarning(t *testing.T) {
	tests := []struct {
		accel, reason string
		warn          bool
	}{
		{"tcg", "open /dev/kvm: no such file or directory", true},
		{"tcg", "kvm probe: kvm_pvm cannot run the guest kernel", true},
		{"tcg", "cached probe: open /dev/kvm: no such file or directory", false},
		{"tcg", "asked for", false},
		{"tcg", AccelEnv + " is set", false},
		{"kvm", "/dev/kvm runs a guest", false},
	}
	for _, tt := range tests {
		got := tcgWarning(tt.accel, tt.reason)
		if (got != "") != tt.warn || (tt.warn && !strings.Contains(got, tt.reason)) {
			t.Errorf("tcgWarning(%q, %q) = %q, want a warning: %v (naming the reason)", tt.accel, tt.reason, got, tt.warn)
		}
	}
}
