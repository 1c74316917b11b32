package guestinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/loftd/loftd/contract"
)

// writeStatusFile leaves status in contract.StatusPath on the root share
// (under root, "/" in the guest), so the host can tell a guest init that
// reported from one that never did: libkrun's status ioctl is not proof,
// since the VMM exits 0 when the guest dies first. A temporary file,
// fsynced, renamed into place and the directory fsynced: the host must
// never read half a status, nor lose it to the reboot that follows.
func writeStatusFile(root string, status int) error {
	path := filepath.Join(root, contract.StatusPath)
	dir := filepath.Dir(path)
	fail := func(err error) error { return fmt.Errorf("write status file %s: %w", contract.StatusPath, err) }
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".status.tmp-*")
	if err != nil {
		return fail(err)
	}
	_, err = f.WriteString(strconv.Itoa(status) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fail(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fail(err)
	}
	return nil
}
