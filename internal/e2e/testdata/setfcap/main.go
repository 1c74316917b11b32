// Command setfcap writes a file capability (CAP_DAC_READ_SEARCH, permitted
// and effective) on its argument as a raw security.capability xattr, as
// setcap would: the hostile-guest tests run it in the guest (busybox has
// no setcap). Static, no dependencies: the test builds it with
// CGO_ENABLED=0 and puts it in the workspace.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: setfcap FILE")
		os.Exit(2)
	}
	const capDacReadSearch = 2
	// struct vfs_cap_data, revision 2: magic_etc, then permitted and
	// inheritable for the low and the high 32 capabilities.
	v := make([]byte, 20)
	binary.LittleEndian.PutUint32(v[0:], 0x02000000|0x1) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	binary.LittleEndian.PutUint32(v[4:], 1<<capDacReadSearch)
	if err := syscall.Setxattr(os.Args[1], "security.capability", v, 0); err != nil {
		fmt.Println("setxattr:", err)
		os.Exit(1)
	}
	fmt.Println("setxattr: ok")
}
