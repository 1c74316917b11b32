package qemu

import "strings"

// GuestCmdline is the kernel command line Args gives a guest whose init is
// init under accel: KernelCmdline, plus the preset delay loop under TCG.
// Benchmarks boot raw QEMU with it, so a baseline runs the same line.
func GuestCmdline(init, accel string) string {
	line := KernelCmdline(init)
	if strings.HasPrefix(accel, "tcg") {
		line += " " + tcgDelayLoop
	}
	return line
}
