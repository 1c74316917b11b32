// Package rootfs owns everything between an image reference and a task's root
// directory: resolving references through any containers/image transport,
// the containers/storage store under STATE/images, the digest-keyed image
// cache with its tag→digest hints, task root backends (btrfs-snapshot,
// kernel overlay, fuse-overlayfs) and their cleanup, and the keep-id user
// namespace that rootless ingestion and the helper share.
//
// It must not import host, krun, disks or guestinit: host wires it in.
// Programs linking it must be built with cgo (the btrfs graph driver and the
// containers/storage unshare constructor need it) and the tag
// containers_image_openpgp, and must call buildah.InitReexec() (or
// reexec.Init()) first thing in main and TestMain.
package rootfs
