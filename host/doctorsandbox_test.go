package host

import (
	"strings"
	"testing"

	"github.com/loftd/loftd/internal/confine"
)

func TestSandboxCheck(t *testing.T) {
	for _, tt := range []struct {
		mode       confine.Mode
		abi        int
		seccomp    bool
		wantLevel  string
		wantDetail string
	}{
		{confine.Enforce, 7, true, "ok", "landlock ABI 7"},
		{confine.Enforce, 0, true, "warn", "no landlock"},
		{confine.Enforce, 7, false, "fail", "no seccomp"},
		{confine.Audit, 7, true, "warn", "SECCOMP_RET_LOG"},
		{confine.Off, 7, true, "warn", "qemu: none"},
	} {
		c := sandboxCheck(tt.mode, tt.abi, tt.seccomp)
		if c.level != tt.wantLevel || !strings.Contains(c.detail, tt.wantDetail) {
			t.Errorf("sandboxCheck(%s, ABI %d, seccomp %v) = %s %q, want %s and %q", tt.mode, tt.abi, tt.seccomp, c.level, c.detail, tt.wantLevel, tt.wantDetail)
		}
	}
}
