package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/nodedebug/nodedebug/api"
)

// The channels of the remote-command websocket protocol.
const (
	stdinChannel = iota
	stdoutChannel
	stderrChannel
	errorChannel
	resizeChannel
)

const (
	// idleTimeout cuts a session with no traffic either way for this long.
	idleTimeout = 4 * time.Hour
	// firstSizeWait is how long a terminal session waits for the client's
	// first size, so the tool process starts with it.
	firstSizeWait = time.Second
	stdinChunk    = 32 << 10
)

// terminalSize is a resize message of the protocol.
type terminalSize struct {
	Width, Height uint16
}

// bridgeSession copies one session between the websocket and the agent.
type bridgeSession struct {
	req     *attachRequest
	streams []io.ReadWriteCloser
	log     *slog.Logger
	sizes   chan terminalSize
	// gone is closed when the client's websocket is closed.
	gone chan struct{}

	mu     sync.Mutex
	stream api.Agent_AttachClient
}

func (g *Gateway) bridge(w http.ResponseWriter, r *http.Request, req *attachRequest,
	client api.AgentClient, log *slog.Logger) {
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remotecommand.StreamProtocolV5Name: {Binary: true, Channels: channels(req)},
	})
	conn.SetIdleTimeout(idleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		log.WarnContext(r.Context(), "upgrade to websocket failed", "error", err)
		return
	}
	defer conn.Close()

	s := &bridgeSession{req: req, streams: streams, log: log,
		sizes: make(chan terminalSize, 1), gone: make(chan struct{})}
	s.announce()
	go s.readSizes()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.gone:
			cancel()
		case <-ctx.Done():
		}
	}()

	code, err := s.run(ctx, client)
	s.finish(code, err)
}

func channels(req *attachRequest) []wsstream.ChannelType {
	pick := func(on bool, t wsstream.ChannelType) wsstream.ChannelType {
		if on {
			return t
		}
		return wsstream.IgnoreChannel
	}
	return []wsstream.ChannelType{
		stdinChannel:  pick(req.start.Stdin, wsstream.ReadChannel),
		stdoutChannel: pick(req.stdout, wsstream.WriteChannel),
		stderrChannel: pick(req.stderr, wsstream.WriteChannel),
		errorChannel:  wsstream.WriteChannel,
		resizeChannel: wsstream.ReadChannel,
	}
}

// announce writes an empty frame, which tells the client the streams are
// open, on the first channel it reads.
func (s *bridgeSession) announce() {
	switch {
	case s.req.stdout:
		s.streams[stdoutChannel].Write(nil)
	case s.req.stderr:
		s.streams[stderrChannel].Write(nil)
	default:
		s.streams[errorChannel].Write(nil)
	}
}

// readSizes decodes resize messages until the websocket closes; clients
// never close the resize channel themselves, so its end means they left.
func (s *bridgeSession) readSizes() {
	defer close(s.gone)
	decoder := json.NewDecoder(s.streams[resizeChannel])
	for {
		var size terminalSize
		if err := decoder.Decode(&size); err != nil {
			return
		}
		// Keep only the newest size; a slow agent must not block the reader.
		select {
		case <-s.sizes:
		default:
		}
		s.sizes <- size
	}
}

// run starts the session on the agent and copies I/O until the tool
// process exits. It returns the exit code.
func (s *bridgeSession) run(ctx context.Context, client api.AgentClient) (int32, error) {
	s.firstSize(ctx)

	u := s.req.user
	ctx = metadata.AppendToOutgoingContext(ctx, api.MetadataUser, u.GetName(),
		api.MetadataGroups, strings.Join(u.GetGroups(), ","))
	stream, err := client.Attach(ctx)
	if err != nil {
		return 0, fmt.Errorf("open attach stream to agent: %w", err)
	}
	s.stream = stream
	if err := s.send(&api.AttachRequest{Msg: &api.AttachRequest_Start{Start: s.req.start}}); err != nil {
		return 0, fmt.Errorf("send start to agent: %w", err)
	}

	first, err := stream.Recv()
	if err != nil {
		return 0, err
	}
	if exit := first.GetExit(); exit != nil {
		return s.exit(exit), nil
	}

	if s.req.start.Stdin {
		go s.forwardStdin()
	}
	go s.forwardSizes(ctx)
	return s.copyOutput()
}

// firstSize waits briefly for the client's terminal size.
func (s *bridgeSession) firstSize(ctx context.Context) {
	if !s.req.start.Tty {
		return
	}
	select {
	case size := <-s.sizes:
		s.req.start.Size = &api.TerminalSize{Width: uint32(size.Width), Height: uint32(size.Height)}
	case <-time.After(firstSizeWait):
	case <-ctx.Done():
	}
}

func (s *bridgeSession) send(req *api.AttachRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream.Send(req)
}

func (s *bridgeSession) forwardStdin() {
	buf := make([]byte, stdinChunk)
	for {
		n, err := s.streams[stdinChannel].Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...)
			if s.send(&api.AttachRequest{Msg: &api.AttachRequest_Stdin{Stdin: data}}) != nil {
				return
			}
		}
		if err != nil {
			// The client's half-close of stdin and its end both mean EOF
			// for the tool process.
			_ = s.send(&api.AttachRequest{Msg: &api.AttachRequest_StdinEof{StdinEof: true}})
			return
		}
	}
}

func (s *bridgeSession) forwardSizes(ctx context.Context) {
	for {
		select {
		case size := <-s.sizes:
			resize := &api.TerminalSize{Width: uint32(size.Width), Height: uint32(size.Height)}
			if s.send(&api.AttachRequest{Msg: &api.AttachRequest_Resize{Resize: resize}}) != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (s *bridgeSession) copyOutput() (int32, error) {
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			return 0, err
		}

		switch msg := resp.Msg.(type) {
		case *api.AttachResponse_Stdout:
			s.streams[stdoutChannel].Write(msg.Stdout)
		case *api.AttachResponse_Stderr:
			s.streams[stderrChannel].Write(msg.Stderr)
		case *api.AttachResponse_Exit:
			return s.exit(msg.Exit), nil
		}
	}
}

// exit shows the agent's explanation, if any, on stderr.
func (s *bridgeSession) exit(exit *api.Exit) int32 {
	if exit.Message != "" {
		fmt.Fprintf(s.streams[stderrChannel], "nodedebug: %s\n", exit.Message)
	}
	return exit.Code
}

// finish writes the outcome on the error channel, as kubelet does for exec.
func (s *bridgeSession) finish(code int32, err error) {
	st := metav1.Status{Status: metav1.StatusSuccess}
	switch {
	case err != nil:
		st = failure(err)
		s.log.Info("attach failed", "error", err)
	case code != 0:
		st = metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  remotecommand.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with exit code %d", code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type:    remotecommand.ExitCodeCauseType,
				Message: strconv.Itoa(int(code)),
			}}},
		}
	}

	data, _ := json.Marshal(st)
	s.streams[errorChannel].Write(data)
	s.log.Info("attach ended", "exit_code", code)
}

// failure turns an agent error into a Status the client prints.
func failure(err error) metav1.Status {
	st := metav1.Status{Status: metav1.StatusFailure, Message: err.Error(),
		Reason: metav1.StatusReasonInternalError}
	if s, ok := status.FromError(err); ok {
		st.Message = s.Message()
		st.Reason = reasonFor(s.Code())
	}
	if errors.Is(err, context.Canceled) {
		st.Message = "the client went away"
	}
	return st
}

func reasonFor(code codes.Code) metav1.StatusReason {
	switch code {
	case codes.NotFound:
		return metav1.StatusReasonNotFound
	case codes.InvalidArgument:
		return metav1.StatusReasonBadRequest
	case codes.FailedPrecondition:
		return metav1.StatusReasonConflict
	case codes.Unavailable:
		return metav1.StatusReasonServiceUnavailable
	}
	return metav1.StatusReasonInternalError
}
