// netbench is the guest's half of BenchmarkNet: it connects to ADDR and
// echoes (echo), reads to the end then answers one byte (sink), or writes
// N bytes and closes (source). The host's half does all the timing.
package main

import (
	"io"
	"net"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: netbench echo|sink|source ADDR [N]")
	}
	conn, err := net.Dial("tcp", os.Args[2])
	if err != nil {
		fail(err.Error())
	}
	switch os.Args[1] {
	case "echo":
		_, err = io.Copy(conn, conn)
	case "sink":
		if _, err = io.Copy(io.Discard, conn); err == nil {
			_, err = conn.Write([]byte("k"))
		}
	case "source":
		n, _ := strconv.ParseInt(os.Args[3], 10, 64)
		buf := make([]byte, 1<<20)
		for ; n > 0 && err == nil; n -= int64(len(buf)) {
			_, err = conn.Write(buf[:min(n, int64(len(buf)))])
		}
	}
	conn.Close()
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	os.Stderr.WriteString("netbench: " + msg + "\n")
	os.Exit(1)
}
