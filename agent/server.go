package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	"github.com/nodedebug/nodedebug/api"
)

// ErrSocketOwned means another agent already serves on the socket.
var ErrSocketOwned = errors.New("socket is owned by another agent")

// shutdownGrace is how long sessions get, once told the agent stops, to
// send their last message before their streams are cut.
const shutdownGrace = 5 * time.Second

// Serve answers clients on the unix socket at path until ctx ends, then
// stops and waits for every session's cleanup. The caller holds the
// socket's lock (LockSocket).
func (a *Agent) Serve(ctx context.Context, path string) error {
	// Detached sessions live as long as the agent serves.
	a.lifetime = ctx

	listener, err := listen(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)

	// The peer credentials tell every call which uid and pid is calling.
	opts := append(streamWindows(), grpc.Creds(peerCredentials{}))
	server := grpc.NewServer(append(opts, recoverCalls(a.log)...)...)
	api.RegisterAgentServer(server, &service{agent: a})

	// Room for both servers' results, so neither goroutine blocks.
	served := make(chan error, 2)
	go func() { served <- server.Serve(listener) }()
	a.log.InfoContext(ctx, "agent listening", "socket", path)
	tlsServer, err := a.serveTLS(ctx, served)
	if err != nil {
		server.Stop()
		return err
	}

	select {
	case err = <-served:
	case <-ctx.Done():
		a.log.Info("shutting down")
		a.stop()
	}
	stopGracefully(server, shutdownGrace)
	if tlsServer != nil {
		stopGracefully(tlsServer, shutdownGrace)
	}

	a.Wait()
	return err
}

// streamWindows lets a stream carry several large output messages before
// waiting for the client's acknowledgement, marshals them into buffers
// that are not cleared first, and moves them in large socket writes.
func streamWindows() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(windowSize),
		grpc.InitialConnWindowSize(windowSize),
		experimental.BufferPool(api.Buffers),
		grpc.WriteBufferSize(socketBuffer),
		grpc.ReadBufferSize(socketBuffer),
	}
}

// windowSize is gRPC's flow-control window, per stream and per connection.
const windowSize = 8 << 20

// socketBuffer is how much gRPC reads or writes on the socket at once,
// 32 KiB by default. gRPC takes the write buffer from a pool while it
// flushes and gives it back after.
const socketBuffer = 256 << 10

func stopGracefully(server *grpc.Server, grace time.Duration) {
	stopped := make(chan struct{})
	go func() {
		server.GracefulStop()
		close(stopped)
	}()

	select {
	case <-stopped:
	case <-time.After(grace):
		server.Stop()
	}
}

// LockSocket takes an exclusive lock beside the agent's socket, so that
// two agents never fight over it, and returns what releases it. An agent
// takes it before anything else: before that it must not touch the
// sessions of the agent that may own the socket. The lock goes away with
// the process, however it dies.
func LockSocket(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create folder of agent socket %s: %w", path, err)
	}

	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock of agent socket %s: %w", path, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %s (stop the other agent first)", ErrSocketOwned, path)
	}
	return func() { lock.Close() }, nil
}

// listen replaces any stale socket and listens with mode 0600.
func listen(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale agent socket %s: %w", path, err)
	}

	// The umask makes the socket 0600 from the moment it exists.
	old := unix.Umask(0o177)
	listener, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on agent socket %s: %w", path, err)
	}
	return listener, nil
}

// service adapts the agent to the generated gRPC interface.
type service struct {
	api.UnimplementedAgentServer
	agent *Agent
}

func (s *service) Attach(stream api.Agent_AttachServer) error {
	return s.agent.Attach(stream)
}

func (s *service) Runtime(ctx context.Context, _ *api.RuntimeRequest) (*api.RuntimeResponse, error) {
	version := s.agent.cri.Version
	return &api.RuntimeResponse{
		Endpoint:       s.agent.cri.Endpoint,
		RuntimeName:    version.GetRuntimeName(),
		RuntimeVersion: version.GetRuntimeVersion(),
		Path:           s.agent.launcher.name(),
	}, nil
}

func (s *service) ListSessions(context.Context, *api.ListSessionsRequest) (*api.ListSessionsResponse, error) {
	return &api.ListSessionsResponse{Sessions: s.agent.registry.list()}, nil
}

func (s *service) KillSession(ctx context.Context, req *api.KillSessionRequest) (*api.KillSessionResponse, error) {
	caller := callerOf(ctx)
	if err := s.agent.registry.kill(req.GetId(), caller); err != nil {
		return nil, toStatus(err)
	}

	s.agent.log.InfoContext(ctx, "session killed", "session", req.GetId(), "uid", caller.uid, "pid", caller.pid)
	return &api.KillSessionResponse{}, nil
}
