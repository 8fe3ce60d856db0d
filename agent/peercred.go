package agent

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// peerInfo is who is on the other end of the agent socket, as the kernel
// saw it when the client connected.
type peerInfo struct {
	uid uint32
	pid int32
	// kubernetes is the user the gateway verified, for calls over its
	// mutual-TLS listener; uid and pid are then zero.
	kubernetes string
}

// peerCredentials is a gRPC transport credential for a unix socket: it
// adds nothing to the wire, but reads the client's uid and pid with
// SO_PEERCRED during the handshake, so every call knows its caller.
type peerCredentials struct{}

// peerAuth carries the peer credentials of a connection.
type peerAuth struct {
	credentials.CommonAuthInfo
	peer peerInfo
}

func (peerAuth) AuthType() string { return "peercred" }

func (peerCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	unixConn, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, nil, fmt.Errorf("agent connection from %s is not a unix socket", conn.RemoteAddr())
	}

	p, err := readPeerCred(unixConn)
	if err != nil {
		return nil, nil, err
	}
	auth := peerAuth{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}, peer: p}
	return conn, auth, nil
}

func readPeerCred(conn *net.UnixConn) (peerInfo, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return peerInfo{}, fmt.Errorf("read peer credentials of agent client: %w", err)
	}

	var cred *unix.Ucred
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err = errors.Join(err, credErr); err != nil {
		return peerInfo{}, fmt.Errorf("read peer credentials of agent client: %w", err)
	}
	return peerInfo{uid: cred.Uid, pid: cred.Pid}, nil
}

// ClientHandshake is never used: clients dial with insecure credentials,
// which is all a unix socket needs.
func (peerCredentials) ClientHandshake(_ context.Context, _ string,
	conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return conn, peerAuth{}, nil
}

func (peerCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (c peerCredentials) Clone() credentials.TransportCredentials { return c }

func (peerCredentials) OverrideServerName(string) error { return nil }

// callerOf returns the peer credentials of the call in ctx.
func callerOf(ctx context.Context) peerInfo {
	if c, ok := CallerFrom(ctx); ok {
		return peerInfo{kubernetes: c.User}
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return peerInfo{}
	}
	auth, _ := p.AuthInfo.(peerAuth)
	return auth.peer
}
