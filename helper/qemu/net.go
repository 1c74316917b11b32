package qemu

import "strconv"

// netArgs are the virtio-net device on passt's socket at fd (QEMU 7.2's
// stream netdev takes a connected socket by number), or nothing when the
// plan has no passt network (fd < 0): the guest then has only lo.
func netArgs(fd int, mac string) []string {
	if fd < 0 {
		return nil
	}
	dev := "virtio-net-device,netdev=n0"
	if mac != "" {
		dev += ",mac=" + mac
	}
	return []string{"-netdev", "stream,id=n0,server=off,addr.type=fd,addr.str=" + strconv.Itoa(fd), "-device", dev}
}
