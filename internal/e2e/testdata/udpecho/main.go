// udpecho answers every datagram on UDP port os.Args[1] with "echo: " and
// the datagram: a UDP server for the guest, which busybox lacks. With a
// second argument it creates that file once it is bound, so a test knows
// the server is up before it judges the UDP path.
package main

import (
	"net"
	"os"
)

func main() {
	pc, err := net.ListenPacket("udp", ":"+os.Args[1])
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	if len(os.Args) > 2 {
		if err := os.WriteFile(os.Args[2], nil, 0o644); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			os.Exit(1)
		}
		pc.WriteTo(append([]byte("echo: "), buf[:n]...), from)
	}
}
