package e2e

import "syscall"

var sysZero = syscall.Signal(0)
