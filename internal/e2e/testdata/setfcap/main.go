// Command setfcap writes a file capability (CAP_DAC_READ_SEARCH, permitted
// and effective) on FILE as a raw security.capability xattr, as setcap
// would: the hostile-guest tests run it in the guest (busybox has no
// setcap). With ROOTID it writes revision 3, a namespaced capability for
// the namespace whose root is ROOTID (as the writer sees ids), else
// revision 2. Static, no dependencies: the test builds it with
// CGO_ENABLED=0 and puts it in the workspace.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) != 2 && len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: setfcap FILE [ROOTID]")
		os.Exit(2)
	}
	const capDacReadSearch = 2
	// struct vfs_cap_data, revision 2: magic_etc, then permitted and
	// inheritable for the low and the high 32 capabilities; revision 3
	// (struct vfs_ns_cap_data) adds the root id.
	v := make([]byte, 20)
	binary.LittleEndian.PutUint32(v[0:], 0x02000000|0x1) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	if len(os.Args) == 3 {
		var rootid uint32
		if _, err := fmt.Sscan(os.Args[2], &rootid); err != nil {
			fmt.Fprintln(os.Stderr, "setfcap: ROOTID:", err)
			os.Exit(2)
		}
		v = binary.LittleEndian.AppendUint32(v, rootid)
		binary.LittleEndian.PutUint32(v[0:], 0x03000000|0x1) // VFS_CAP_REVISION_3
	}
	binary.LittleEndian.PutUint32(v[4:], 1<<capDacReadSearch)
	if err := syscall.Setxattr(os.Args[1], "security.capability", v, 0); err != nil {
		fmt.Println("setxattr:", err)
		os.Exit(1)
	}
	fmt.Println("setxattr: ok")
}
