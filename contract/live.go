package contract

import "time"

// Live workspaces (issue 19): a control channel between the helper and the
// guest init that outlives the main command. Both ends speak the SSH
// protocol (golang.org/x/crypto/ssh): the guest init is the server, the
// helper the client. The outer connection carries loftd's own requests
// (stop, sessions) and ChanTunnel channels; each tunnel carries a whole
// nested SSH connection to the same server, which is what `loftd exec`,
// `loftd attach` and `loftd ssh-proxy` (OpenSSH's ProxyCommand) speak.
const (
	// PortControl is the virtio-serial port of the control channel (QEMU).
	PortControl = "loftd-control"
	// VsockControlPort is the vsock port of the control channel (libkrun):
	// the guest connects to it, libkrun connects it to the helper's socket.
	VsockControlPort = 1025

	// SSHHostKeyPath is the workspace's pinned host key (an OpenSSH PEM
	// private key, mode 0600) that the host puts on the root share.
	SSHHostKeyPath = "/.loftd/ssh/host_key"
	// SSHAuthorizedKeysPath holds the public keys (authorized_keys format)
	// allowed to log in: the workspace's own client key and the user's.
	SSHAuthorizedKeysPath = "/.loftd/ssh/authorized_keys"

	// ChanTunnel is the outer connection's channel type that carries one
	// nested SSH connection. It has no extra data.
	ChanTunnel = "tunnel@loftd"
	// ReqStop is the outer connection's global request to end the VM: the
	// guest sends SIGTERM to every process, waits StopRequest.GraceSeconds
	// (or until none is left), sends SIGKILL, then ends as after its main
	// command. Its reply is sent before the guest starts.
	ReqStop = "stop@loftd"
	// ReqSessions is the outer connection's global request for the live
	// sessions; the reply's payload is the JSON of []LiveSession.
	ReqSessions = "sessions@loftd"
	// SubsystemAttach, on a nested session channel, attaches to the VM's
	// held main session (EnvHold): the guest replays the recent output,
	// then relays the pty both ways; a pty-req and window-change set its
	// size. It ends with the main session's exit-status.
	SubsystemAttach = "attach@loftd"

	// EnvHold=1: the main command runs on a pty the guest holds for
	// SubsystemAttach, not over the stdio ports.
	EnvHold = "LOFTD_HOLD"
	// EnvDetached=1: the VM outlives its sessions (started with -d); it
	// ends on ReqStop or after EnvIdleTimeout with no session.
	EnvDetached = "LOFTD_DETACHED"
	// EnvIdleTimeout is the number of seconds the VM stays up with no
	// session and its main command ended (0 or unset: none).
	EnvIdleTimeout = "LOFTD_IDLE_TIMEOUT"
)

// StopRequest is ReqStop's payload (ssh.Marshal form).
type StopRequest struct {
	GraceSeconds uint32
}

// LiveSession is one entry of ReqSessions' reply.
type LiveSession struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"` // main, exec, shell, attach, sftp, forward, agent
	User    string    `json:"user"`
	Command []string  `json:"command,omitempty"`
	TTY     bool      `json:"tty"`
	Started time.Time `json:"started"`
}
