package contract

// ValidHostname reports whether h is a hostname the guest init accepts
// (EnvHostname): up to 64 of a-z, A-Z, 0-9, '-' and '.', not starting
// with '-' or '.'. The host checks a user's --hostname with it before boot.
func ValidHostname(h string) bool { return h != "" && validHostname(h) }
