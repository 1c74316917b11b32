package qemu

import (
	"slices"
	"testing"
)

func TestNetArgs(t *testing.T) {
	if got := netArgs(-1, "5a:94:ef:e4:0c:ee"); got != nil {
		t.Errorf("no passt: %q, want no net device", got)
	}
	want := []string{"-netdev", "stream,id=n0,server=off,addr.type=fd,addr.str=7", "-device", "virtio-net-device,netdev=n0,mac=5a:94:ef:e4:0c:ee"}
	if got := netArgs(7, "5a:94:ef:e4:0c:ee"); !slices.Equal(got, want) {
		t.Errorf("netArgs(7) = %q, want %q", got, want)
	}
}
