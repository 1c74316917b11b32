package session

import "os/user"

// homeDir is $HOME, else the home directory the user database gives the
// process's user: `kubectl exec`, `podman exec` and cron start processes
// with no HOME, and loftd must still find its config and state there.
func homeDir(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return ""
}
