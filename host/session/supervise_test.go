package session

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/loftd/loftd/helper"
)

// helperEnd runs sh -c script and returns how it ended, as boot sees the
// helper's end.
func helperEnd(t *testing.T, script string) (*os.ProcessState, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("sh -c %q: %v", script, err)
	}
	return cmd.ProcessState, err
}

// TestMapStatus: with libkrun's init (gr.required) the guest init's status
// file decides; without it the run fails with 125 naming the console log,
// whatever the VMM's exit code (0 when the guest died first, libkrun's
// init's own 127/126 when it could not start the guest init).
func TestMapStatus(t *testing.T) {
	missing := &fs.PathError{Op: "open", Path: "/task/rootfs/.loftd/status", Err: fs.ErrNotExist}
	tests := []struct {
		name    string
		script  string
		he      *helper.Error
		gr      guestReport
		want    int
		wantErr string // "" = no error
	}{
		{"qemu: the helper's status", "exit 3", nil, guestReport{}, 3, ""},
		{"helper killed", "kill -9 $$", nil, guestReport{required: true, err: missing}, 137, ""},
		{"helper setup failure", "exit 125", &helper.Error{Phase: "boot", Err: "no kvm"}, guestReport{}, 0, "boot: no kvm"},
		{"krun: reported", "exit 7", nil, guestReport{required: true, data: []byte("7\n")}, 7, ""},
		{"krun: reported 0", "exit 0", nil, guestReport{required: true, data: []byte("0\n")}, 0, ""},
		{"krun: file wins over the VMM", "exit 0", nil, guestReport{required: true, data: []byte("42\n")}, 42, ""},
		{"krun: guest panicked, VMM 0", "exit 0", nil, guestReport{required: true, err: missing, console: "/task/console.log"}, 0,
			"without the guest init reporting a status"},
		{"krun: libkrun's init could not exec", "exit 127", nil, guestReport{required: true, err: missing}, 0, "VMM exit status 127"},
		{"krun: garbage", "exit 0", nil, guestReport{required: true, data: []byte("zero")}, 0, "is not an exit status"},
		{"krun: out of range", "exit 0", nil, guestReport{required: true, data: []byte("300")}, 0, "is not an exit status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, werr := helperEnd(t, tt.script)
			got, err := mapStatus(ps, werr, tt.he, tt.gr, slog.New(slog.DiscardHandler))
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("mapStatus(%s) = %d, %v; want %d, nil", tt.name, got, err, tt.want)
				}
				return
			}
			var ee ExitError
			if !errors.As(err, &ee) || ee.Status != ExitSetup || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("mapStatus(%s) = %d, %v; want exit %d with an error containing %q", tt.name, got, err, ExitSetup, tt.wantErr)
			}
			if tt.gr.console != "" && !strings.Contains(err.Error(), tt.gr.console) {
				t.Errorf("mapStatus(%s) error %q does not name the console log %s", tt.name, err, tt.gr.console)
			}
		})
	}
}
