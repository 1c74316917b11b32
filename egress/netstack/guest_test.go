package netstack

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/loftd/loftd/contract"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// guest is a second gVisor stack playing the VM: the guest's address and
// default route (contract.Net*), its ethernet frames carried to the Net
// under test over a socketpair in QEMU's stream framing, as QEMU's
// virtio-net would. It lets the forwarder's decisions be tested without a
// VM or root.
type guest struct {
	s *stack.Stack
}

func newGuest(t *testing.T, n *Net) *guest {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := osFile(fd)
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	go n.Serve(ctx, conns[0])
	ch := channel.New(256, mtu, "\x5a\x94\xef\xe4\x0c\xee")
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := s.CreateNIC(1, ethernet.New(ch)); err != nil {
		t.Fatal(err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr4(contract.NetAddress), PrefixLen: contract.NetPrefix}}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header4Any(), Gateway: addr4(contract.NetGateway), NIC: 1}})
	vm := conns[1]
	go func() { // the guest's frames out: 4-byte length, then the frame
		for {
			pkt := ch.ReadContext(ctx)
			if pkt == nil {
				return
			}
			frame := pkt.ToView().AsSlice()
			hdr := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
			pkt.DecRef()
			if _, err := vm.Write(append(hdr, frame...)); err != nil {
				return
			}
		}
	}()
	go func() { // frames in
		var size [4]byte
		for {
			if _, err := io.ReadFull(vm, size[:]); err != nil {
				return
			}
			frame := make([]byte, binary.BigEndian.Uint32(size[:]))
			if _, err := io.ReadFull(vm, frame); err != nil {
				return
			}
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
			ch.InjectInbound(0, pkt)
			pkt.DecRef()
		}
	}()
	t.Cleanup(func() {
		cancel()
		vm.Close()
		conns[0].Close()
		s.Close()
		n.Close()
	})
	return &guest{s: s}
}

func header4Any() tcpip.Subnet {
	sn, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes(make([]byte, 4)))
	return sn
}

// dial connects from the guest to addr (a literal address and port).
func (g *guest) dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, g.s, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(addr.Addr().As4()), Port: addr.Port()}, ipv4.ProtocolNumber)
}

// udp opens a UDP socket of the guest towards addr.
func (g *guest) udp(addr netip.AddrPort) (net.Conn, error) {
	return gonet.DialUDP(g.s, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(addr.Addr().As4()), Port: addr.Port()}, ipv4.ProtocolNumber)
}

func osFile(fd int) *os.File { return os.NewFile(uintptr(fd), "guest-test") }

// gvisor-tap-vsock logs a closed VM connection through logrus's global
// logger; the tests close theirs on purpose.
func init() { logrus.SetOutput(io.Discard) }
