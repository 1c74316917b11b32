package e2e

import (
	"fmt"
	"net"
	"testing"
)

// TestPublishForms: a port range maps each host port to its guest port,
// and a publish without an address answers on the host's loopback too (on
// loftd's egress network, the default).
func TestPublishForms(t *testing.T) {
	w := newWorld(t)
	lo := freeRange(t, 2)
	any := freePort(t, "tcp")
	args := []string{"-p", fmt.Sprintf("127.0.0.1:%d-%d:8080-8081", lo, lo+1), "-p", fmt.Sprintf("%d:8082", any)}
	script := ""
	for _, s := range []struct {
		port int
		says string
	}{{8080, "range first"}, {8081, "range second"}, {8082, "every address"}} {
		script += fmt.Sprintf("while true; do nc -l -p %d -e echo %s; done &\n", s.port, s.says)
	}
	stop := backgroundVM(t, w, "forms", args, script)
	askTCP(t, lo, "range first")
	askTCP(t, lo+1, "range second")
	askTCP(t, any, "every address")
	stop()
}

// freeRange finds n consecutive free TCP ports on the host's loopback.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		first := freePort(t, "tcp")
		ok := true
		for p := first + 1; p < first+n && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if ok = err == nil; ok {
				l.Close()
			}
		}
		if ok {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
