package launch

import (
	"strings"
	"testing"
)

// The parsers are the one place the mode names are read; "" is the
// default, and an unknown name lists the ones there are.
func TestParseModes(t *testing.T) {
	tests := []struct {
		in       string
		parse    func(string) (string, error)
		want     string
		wantErrs string
	}{
		{"", parseVMM, "auto", ""},
		{"krun", parseVMM, "krun", ""},
		{"qemu", parseVMM, "qemu", ""},
		{"auto", parseVMM, "auto", ""},
		{"xen", parseVMM, "", `"xen": want one of auto, krun, qemu`},
		{"QEMU", parseVMM, "", `"QEMU": want one of`},
		{"", parseNet, "egress", ""},
		{"egress", parseNet, "egress", ""},
		{"passt", parseNet, "passt", ""},
		{"passt", parseNet, "passt", ""},
		{"tsi", parseNet, "tsi", ""},
		{"none", parseNet, "none", ""},
		{"slirp", parseNet, "", `"slirp": want one of egress, passt, tsi, none`},
	}
	for _, tt := range tests {
		got, err := tt.parse(tt.in)
		if tt.wantErrs != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErrs) {
				t.Errorf("parse(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErrs)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parse(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if GiB(3) != 3072 {
		t.Errorf("GiB(3) = %d MiB, want 3072", GiB(3))
	}
}

func parseVMM(s string) (string, error) {
	v, err := ParseVMM(s)
	return v.String(), err
}

func parseNet(s string) (string, error) {
	m, err := ParseNetworkMode(s)
	return m.String(), err
}
