// Command gohello prints one line: a small static Go program that
// TestExecFromVirtiofs runs in turn with the guest init.
package main

import "os"

func main() { os.Stdout.WriteString("hello\n") }
