package contract

// The workspace's bootstrap script ([workspace] bootstrap, --bootstrap):
// run once per new workspace, as the guest user, before its first
// workload. The host decides "once" (it keeps the stamp, the guest's disks
// cannot) and puts the script on the root share only while it has not
// succeeded; the guest runs it when it is there, with its output in
// BootstrapLogPath and its status ("N\n") in BootstrapStatusPath, which
// the host reads back, without following links, after the VM ends.
const (
	BootstrapPath       = "/.loftd/bootstrap"
	BootstrapLogPath    = "/.loftd/bootstrap.log"
	BootstrapStatusPath = "/.loftd/bootstrap.status"
)
