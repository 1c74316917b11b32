package disks

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // 0: an error is wanted
	}{
		{"128", 128 * GiB},
		{"64", DefaultSize},
		{"128G", 128 * GiB},
		{"128g", 128 * GiB},
		{"128GiB", 128 * GiB},
		{"512M", 512 * MiB},
		{"512m", 512 * MiB},
		{"512MiB", 512 * MiB},
		{"1T", TiB},
		{"1t", TiB},
		{"1TiB", TiB},
		{"0128", 128 * GiB},
		{"8388607T", 8388607 * TiB}, // the largest T that fits in int64
		{"", 0},
		{"0", 0},
		{"0G", 0},
		{"-1", 0},
		{"-1G", 0},
		{"+1G", 0},
		{"1.5G", 0},
		{"12GB", 0},
		{"12gb", 0},
		{"12K", 0},
		{"12 G", 0},
		{" 12", 0},
		{"G", 0},
		{"GiB", 0},
		{"12Gi", 0},
		{"1e3", 0},
		{"8388608T", 0},             // 2^63 bytes: overflow
		{"9223372036854775807", 0},  // overflows once made GiB
		{"99999999999999999999", 0}, // overflows int64 itself
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.want == 0 {
			if err == nil || !strings.Contains(err.Error(), "M, MiB, G, GiB, T, TiB") {
				t.Errorf("ParseSize(%q) = %d, %v; want an error listing the accepted forms", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeMessage(t *testing.T) {
	_, err := ParseSize("12GB")
	want := `size "12GB": want a whole number of GiB (128) or one with a suffix M, MiB, G, GiB, T, TiB (128G, 512MiB)`
	if err == nil || err.Error() != want {
		t.Errorf("ParseSize(%q) error = %v, want %s", "12GB", err, want)
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{DefaultSize, "64 GiB"},
		{TiB, "1 TiB"},
		{3 * TiB / 2, "1536 GiB"},
		{512 * MiB, "512 MiB"},
		{GiB + MiB, "1025 MiB"},
		{4 * KiB, "4 KiB"},
		{4097, "4097 bytes"},
		{0, "0 bytes"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Every size FormatSize prints in a unit ParseSize knows parses back.
func TestFormatParseRoundTrip(t *testing.T) {
	for _, n := range []int64{MinSize, DefaultSize, TiB, 1536 * MiB} {
		s := strings.ReplaceAll(FormatSize(n), " ", "")
		if got, err := ParseSize(s); err != nil || got != n {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, n)
		}
		if got, err := ParseSize(flagSize(n)); err != nil || got != n {
			t.Errorf("ParseSize(flagSize(%d) = %q) = %d, %v; want %d", n, flagSize(n), got, err, n)
		}
	}
}
