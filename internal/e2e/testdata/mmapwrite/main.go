// mmapwrite writes os.Args[2] into the file os.Args[1] through a shared
// mapping made before the file was closed, and exits without msync: the
// data is then only dirty pages in the guest's page cache. (A close after
// the writes would write them back: FUSE's flush does.) With a third
// argument it prints "written" and then holds the mapping until killed.
package main

import (
	"os"
	"syscall"
)

func main() {
	path, data := os.Args[1], os.Args[2]
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		fail(err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		fail(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
	copy(m, data)
	if len(os.Args) > 3 {
		os.Stdout.WriteString("written\n")
		// Hold the dirty mapping until the guest init kills us. Not
		// `select {}`: with no other goroutine the runtime calls that a
		// deadlock and crashes (seen ending in SIGSEGV under CI's load),
		// so the mapping was never held.
		for {
			syscall.Pause()
		}
	}
	os.Exit(0) // no msync, no munmap
}

func fail(err error) {
	os.Stderr.WriteString(err.Error() + "\n")
	os.Exit(1)
}
