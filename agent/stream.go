package agent

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/nodedebug/nodedebug/api"
)

// sender serialises Send calls: gRPC allows one sender per stream at a
// time, and stdout and stderr are copied by separate goroutines.
type sender struct {
	mu     sync.Mutex
	stream api.Agent_AttachServer
}

func (s *sender) send(resp *api.AttachResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream.Send(resp)
}

// outputWriter forwards one of the tool process's output streams.
type outputWriter struct {
	out    *sender
	stderr bool
}

func (w *outputWriter) Write(p []byte) (int, error) {
	// The caller reuses p after Write returns; the message must own its
	// bytes.
	data := make([]byte, len(p))
	copy(data, p)

	resp := &api.AttachResponse{Msg: &api.AttachResponse_Stdout{Stdout: data}}
	if w.stderr {
		resp = &api.AttachResponse{Msg: &api.AttachResponse_Stderr{Stderr: data}}
	}
	if err := w.out.send(resp); err != nil {
		return 0, err
	}
	return len(p), nil
}

// stdinPipe carries the client's stdin to the tool process. onEOF runs once
// when the client's stdin ends, after every byte before it was read.
type stdinPipe struct {
	reader *io.PipeReader
	writer *io.PipeWriter
	onEOF  func()
	once   sync.Once
}

func newStdinPipe() *stdinPipe {
	r, w := io.Pipe()
	return &stdinPipe{reader: r, writer: w}
}

func (p *stdinPipe) Read(b []byte) (int, error) {
	n, err := p.reader.Read(b)
	if errors.Is(err, io.EOF) && p.onEOF != nil {
		p.once.Do(p.onEOF)
	}
	return n, err
}

// abort unblocks both ends when the session ends.
func (p *stdinPipe) abort() {
	p.reader.CloseWithError(io.ErrClosedPipe)
	p.writer.CloseWithError(io.ErrClosedPipe)
}

// forwardInput reads the client's messages until the stream ends: stdin
// bytes, stdin EOF and terminal resizes.
func (s *session) forwardInput(ctx context.Context) {
	for {
		req, err := s.stream.Recv()
		if err != nil {
			// The client half-closed or went away: either way no more
			// stdin will come.
			if s.stdin != nil {
				s.stdin.writer.Close()
			}
			return
		}

		switch msg := req.Msg.(type) {
		case *api.AttachRequest_Stdin:
			s.writeStdin(msg.Stdin)
		case *api.AttachRequest_StdinEof:
			if s.stdin != nil {
				s.stdin.writer.Close()
			}
		case *api.AttachRequest_Resize:
			s.resize(ctx, msg.Resize)
		}
	}
}

func (s *session) writeStdin(data []byte) {
	if s.stdin == nil {
		return
	}
	// A failed write means the process is gone or stdin was closed; the
	// session is ending and the loop keeps reading until it does.
	_, _ = s.stdin.writer.Write(data)
}

func (s *session) resize(ctx context.Context, size *api.TerminalSize) {
	if !s.start.Tty || size.GetWidth() == 0 || size.GetHeight() == 0 {
		return
	}
	if err := s.tool.resize(ctx, size.Width, size.Height); err != nil {
		s.log.Debug("resize terminal", "error", err)
	}
}
