// udpecho answers every datagram on UDP port os.Args[1] with "echo: " and
// the datagram: a UDP server for the guest, which busybox lacks.
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
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			os.Exit(1)
		}
		pc.WriteTo(append([]byte("echo: "), buf[:n]...), from)
	}
}
