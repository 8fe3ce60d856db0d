package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodedebug/nodedebug/api"
)

// backlogBytes bounds the output a detached session keeps for the next
// client; older output is dropped first.
const backlogBytes = 256 << 10

// errAttached means a detached session already has a client.
var errAttached = errors.New("session already has a client")

// detachState is what a detachable session adds: it runs on the agent's
// lifetime instead of its first client's, and clients come and go.
type detachState struct {
	// live is closed once the tool process runs; done once the session
	// ended and its tool was removed, after status is set.
	live   chan struct{}
	done   chan struct{}
	status error
}

// attachDetachable starts a session that survives its client, and serves
// that first client until it leaves or the session ends.
func (a *Agent) attachDetachable(stream api.Agent_AttachServer, start *api.Start) error {
	s := a.newSession(stream, start)
	s.detach = &detachState{live: make(chan struct{}), done: make(chan struct{})}
	s.out.backlog = newBacklog(backlogBytes)

	a.sessions.Add(1)
	go a.runDetachable(s)

	select {
	case <-s.detach.live:
	case <-s.detach.done:
		return s.detach.status
	}
	return s.serveClient(stream)
}

// runDetachable runs the session on the agent's lifetime: it ends when
// the tool process exits, when it is killed or reaches a limit, or when
// the agent stops.
func (a *Agent) runDetachable(s *session) {
	defer a.sessions.Done()
	defer close(s.detach.done)
	defer s.cleanup()

	ctx, cancel := s.limit(namespaces.WithNamespace(a.lifetime, Namespace))
	defer cancel()

	err := s.run(ctx)
	s.report(ctx, err)
	s.detach.status = s.finish(ctx, err)
}

// serveInput forwards the client's input once the tool runs; the client
// of a detachable session is served by its own handler instead.
func (s *session) serveInput(ctx context.Context) {
	if s.detach == nil {
		go s.forwardInput(ctx, s.stream)
		return
	}
	close(s.detach.live)
}

// serveClient forwards one client's input until it leaves, which detaches
// it, or the session ends, whose status it gets.
func (s *session) serveClient(stream api.Agent_AttachServer) error {
	left := make(chan struct{})
	go func() {
		defer close(left)
		s.forwardInput(stream.Context(), stream)
	}()

	select {
	case <-left:
		s.out.detachClient(stream)
		s.log.Info("client detached")
		return nil
	case <-s.detach.done:
		return s.detach.status
	}
}

// reattach connects a client to a detached session: it gets Started
// again, the output kept since the last client left, then the live
// session.
func (a *Agent) reattach(stream api.Agent_AttachServer, start *api.Start) error {
	s, err := a.registry.get(start.Session)
	if err != nil {
		return toStatus(err)
	}
	if s.detach == nil {
		return status.Errorf(codes.FailedPrecondition,
			"session %s was not started with --detach; it ends with its own client", s.id)
	}
	select {
	case <-s.detach.live:
	default:
		return status.Errorf(codes.Unavailable, "session %s is still starting; try again", s.id)
	}

	started := &api.AttachResponse{Msg: &api.AttachResponse_Started{Started: s.startedMsg}}
	if err := s.out.attachClient(stream, started); err != nil {
		return status.Errorf(codes.FailedPrecondition, "reattach to session %s: %v", s.id, err)
	}
	s.auditAttach(callerOf(stream.Context()))
	s.resize(stream.Context(), start.GetSize())
	return s.serveClient(stream)
}

// attachClient makes stream the session's client: Started first, then
// the backlog, then live output.
func (o *sender) attachClient(stream api.Agent_AttachServer, started *api.AttachResponse) error {
	o.mu.Lock()
	defer o.mu.Unlock()

	if o.stream != nil {
		return fmt.Errorf("%w; end that client first", errAttached)
	}
	if err := stream.Send(started); err != nil {
		return err
	}
	for _, msg := range o.backlog.drain() {
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	o.stream = stream
	return nil
}

// detachClient forgets stream if it is still the client.
func (o *sender) detachClient(stream api.Agent_AttachServer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stream == stream {
		o.stream = nil
	}
}

func (o *sender) attached() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stream != nil
}

// backlog keeps the newest output messages up to a number of bytes.
type backlog struct {
	max  int
	size int
	msgs []*api.AttachResponse
}

func newBacklog(max int) *backlog {
	return &backlog{max: max}
}

// add keeps a copy of msg: the output writer reuses a message's buffer
// for the next batch as soon as send returns. Of a message larger than
// the bound, the newest bytes are kept, as batches of output can be.
func (b *backlog) add(msg *api.AttachResponse) {
	msg = newestOutput(msg, b.max)
	b.msgs = append(b.msgs, msg)
	b.size += outputSize(msg)
	for b.size > b.max && len(b.msgs) > 0 {
		b.size -= outputSize(b.msgs[0])
		b.msgs = b.msgs[1:]
	}
}

// drain returns the kept messages, oldest first, and forgets them.
func (b *backlog) drain() []*api.AttachResponse {
	msgs := b.msgs
	b.msgs, b.size = nil, 0
	return msgs
}

// newestOutput copies msg's output, or its last max bytes.
func newestOutput(msg *api.AttachResponse, max int) *api.AttachResponse {
	tail := func(data []byte) []byte {
		return bytes.Clone(data[len(data)-min(len(data), max):])
	}
	switch m := msg.Msg.(type) {
	case *api.AttachResponse_Stdout:
		return &api.AttachResponse{Msg: &api.AttachResponse_Stdout{Stdout: tail(m.Stdout)}}
	case *api.AttachResponse_Stderr:
		return &api.AttachResponse{Msg: &api.AttachResponse_Stderr{Stderr: tail(m.Stderr)}}
	}
	return msg
}

func outputSize(msg *api.AttachResponse) int {
	return len(msg.GetStdout()) + len(msg.GetStderr())
}
