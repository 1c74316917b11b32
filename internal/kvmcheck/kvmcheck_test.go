package kvmcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPVM(t *testing.T) {
	tests := []struct {
		name    string
		modules []string
		wantErr string
	}{
		{"intel", []string{"kvm", "kvm_intel"}, ""},
		{"amd", []string{"kvm", "kvm_amd"}, ""},
		{"no kvm", nil, ""},
		{"pvm", []string{"kvm", "kvm_pvm"}, "kvm_pvm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, m := range tt.modules {
				if err := os.Mkdir(filepath.Join(dir, m), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			old := SysModule
			SysModule = dir
			t.Cleanup(func() { SysModule = old })
			err := PVM()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("PVM() with modules %q = %v, want error containing %q", tt.modules, err, tt.wantErr)
			}
		})
	}
}
