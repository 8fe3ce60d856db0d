package agent

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/nodedebug/nodedebug/api"
)

// sender serialises Send calls: gRPC allows one sender per stream at a
// time, and stdout and stderr are copied by separate goroutines.
type sender struct {
	mu     sync.Mutex
	stream api.Agent_AttachServer

	// count learns how many output bytes went out, or into the backlog.
	count func(int)

	// backlog is set for a detachable session: while no client is
	// attached, output goes there for the next one.
	backlog *backlog
}

func (s *sender) send(resp *api.AttachResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.count != nil {
		s.count(outputSize(resp))
	}
	if s.backlog == nil {
		return s.stream.Send(resp)
	}
	if s.stream != nil && s.stream.Send(resp) == nil {
		return nil
	}
	// The client is gone or was never there: keep the output.
	s.stream = nil
	s.backlog.add(resp)
	return nil
}

// maxMessage is where an output message stops growing. Large messages
// keep gRPC's per-message cost off a fast stream; the wait for a free
// sender keeps a slow one prompt.
const maxMessage = 1 << 20

// A flood of output waits up to linger for a batch of minBatch bytes.
// gRPC's wide windows make Send return at once, so without the wait a
// flood would go out one pipe read (often 16 to 32 KiB) per message, and
// per-message costs on both ends would bound the throughput.
const (
	minBatch = 256 << 10
	linger   = time.Millisecond
)

// outputWriter forwards one of the tool process's output streams. Writes
// gather in a buffer that a sender goroutine empties into one message
// whenever the stream is free: an interactive shell gets each write at
// once, and a flood of output goes in messages of minBatch to maxMessage.
// Output counts as a flood when it arrives within linger of the last send.
type outputWriter struct {
	send func([]byte) error

	mu       sync.Mutex
	changed  *sync.Cond
	pending  []byte
	closed   bool
	err      error
	lastSent time.Time
	done     chan struct{}
}

func newOutputWriter(out *sender, stderr bool) *outputWriter {
	w := &outputWriter{done: make(chan struct{})}
	w.changed = sync.NewCond(&w.mu)
	w.send = func(data []byte) error {
		if stderr {
			return out.send(&api.AttachResponse{Msg: &api.AttachResponse_Stderr{Stderr: data}})
		}
		return out.send(&api.AttachResponse{Msg: &api.AttachResponse_Stdout{Stdout: data}})
	}

	go w.forward()
	return w
}

// Write blocks while a full message waits, which passes the client's pace
// back to the tool process.
func (w *outputWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()

	for len(w.pending) >= maxMessage && w.err == nil && !w.closed {
		w.changed.Wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, io.ErrClosedPipe
	}

	w.pending = append(w.pending, p...)
	w.changed.Broadcast()
	return len(p), nil
}

func (w *outputWriter) forward() {
	defer close(w.done)

	var spare []byte
	for {
		data, ok := w.take(spare)
		if !ok {
			return
		}

		// gRPC encodes the message before Send returns, so the buffer
		// can take the next batch.
		err := w.send(data)
		spare = data[:0]
		w.mu.Lock()
		w.lastSent = time.Now()
		w.mu.Unlock()
		if err != nil {
			w.fail(err)
			return
		}
	}
}

// take waits for output and swaps it for the empty spare buffer; it
// reports false once the writer is closed and empty.
func (w *outputWriter) take(spare []byte) ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()

	for len(w.pending) == 0 && !w.closed {
		w.changed.Wait()
	}
	if len(w.pending) == 0 {
		return nil, false
	}
	if len(w.pending) < minBatch && time.Since(w.lastSent) < linger {
		w.gather()
	}

	data := w.pending
	w.pending = spare
	w.changed.Broadcast()
	return data, true
}

// gather waits, with w.mu held, until a batch is full, the writer is
// closed, or linger has passed.
func (w *outputWriter) gather() {
	deadline := time.Now().Add(linger)
	timer := time.AfterFunc(linger, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.changed.Broadcast()
	})
	defer timer.Stop()

	for len(w.pending) < minBatch && !w.closed && w.err == nil && time.Now().Before(deadline) {
		w.changed.Wait()
	}
}

func (w *outputWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
	w.changed.Broadcast()
}

// flush sends what is left, then stops the sender.
func (w *outputWriter) flush() {
	w.close()
	<-w.done
}

// close refuses further writes; the sender stops once it has sent what is
// left, or once the stream fails.
func (w *outputWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.changed.Broadcast()
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
func (s *session) forwardInput(ctx context.Context, stream api.Agent_AttachServer) {
	for {
		req, err := stream.Recv()
		if err != nil {
			// The client half-closed or went away: either way no more
			// stdin will come from it. A detachable session waits for
			// the next client instead.
			if s.stdin != nil && s.detach == nil {
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
			s.addIn(0)
			s.resize(ctx, msg.Resize)
		}
	}
}

func (s *session) writeStdin(data []byte) {
	if s.stdin == nil {
		return
	}
	s.addIn(len(data))
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
