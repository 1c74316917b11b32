// Package sshd is the guest init's SSH server for live workspaces (issue
// 19). The helper is the client of one "outer" connection over the control
// channel; each of its contract.ChanTunnel channels carries a whole nested
// SSH connection from a local client (loftd exec, loftd attach, OpenSSH
// through loftd ssh-proxy) to this same server.
//
// API summary:
//
//	srv, err := sshd.New(sshd.Config{
//		HostKey: signer, AuthorizedKeys: keys,   // LoadKeys reads contract's files
//		User: guestUser, Root: rootUser,           // who nested sessions run as
//		Spawner: reaper,                          // starts and waits for children
//		Dir: "/workspace", Exe: "/proc/self/exe", // session cwd; sftp re-exec
//		Held: held,                               // LOFTD_HOLD main session (may be nil)
//		OnStop: func(contract.StopRequest) {...}, // ReqStop, after its reply
//	})
//	go srv.ServeOuter(conn)   // the control port or vsock connection
//	n, changed := srv.Tunnels() // open nested connections, for the VM end rule
//
// The outer connection answers ReqStop (OnStop) and ReqSessions (JSON of
// []contract.LiveSession) and accepts ChanTunnel channels; ServeNested
// serves one nested connection directly (tests, or any net.Conn). Users:
// nested connections log in as Config.User.Name or "root", with a key of
// AuthorizedKeys; the outer connection needs such a key and any name.
//
// Nested sessions: exec, shell, pty-req, window-change, env, signal,
// exit-status / exit-signal (a signal death is exit-signal, which clients
// report as 128+n), subsystem sftp (SFTPMain, re-executed as the session's
// user: the guest init dispatches SFTPArg to it), subsystem
// contract.SubsystemAttach (Held), direct-tcpip and agent forwarding.
// Output is drained to its end before exit-status; stdin EOF closes the
// process's stdin.
//
// A process the server starts is waited for through Config.Spawner only:
// the guest init, PID 1, has one reaper for every child (a wait4(-1) loop),
// and any other wait would steal its statuses.
package sshd
