package sshd

import (
	"io"
	"net"
	"time"
)

// streamConn makes a byte stream (a virtio-serial port, an SSH channel)
// the net.Conn that ssh.NewServerConn takes; it never uses deadlines.
type streamConn struct{ io.ReadWriteCloser }

type streamAddr struct{}

func (streamAddr) Network() string { return "loftd" }
func (streamAddr) String() string  { return "loftd-control" }

func (streamConn) LocalAddr() net.Addr                { return streamAddr{} }
func (streamConn) RemoteAddr() net.Addr               { return streamAddr{} }
func (streamConn) SetDeadline(t time.Time) error      { return nil }
func (streamConn) SetReadDeadline(t time.Time) error  { return nil }
func (streamConn) SetWriteDeadline(t time.Time) error { return nil }

func asNetConn(rwc io.ReadWriteCloser) net.Conn {
	if c, ok := rwc.(net.Conn); ok {
		return c
	}
	return streamConn{rwc}
}

// CloseWrite passes a half close on when the stream has one.
func (c streamConn) CloseWrite() error {
	if hc, ok := c.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return nil
}
