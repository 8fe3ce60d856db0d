package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/nodedebug/nodedebug/api"
)

// copyChunk is the size of the tar chunks sent to the agent.
const copyChunk = 256 << 10

// remoteError is a failure the agent reported in the middle of a stream.
type remoteError struct{ err error }

func (e *remoteError) Error() string { return e.err.Error() }

// tarStream reads the agent's tar chunks as one stream, up to its Done.
type tarStream struct {
	stream   api.Agent_CopyClient
	progress *progress
	buf      []byte
	done     bool
}

func (t *tarStream) Read(p []byte) (int, error) {
	for len(t.buf) == 0 {
		if t.done {
			return 0, io.EOF
		}
		if err := t.next(); err != nil {
			return 0, err
		}
	}

	n := copy(p, t.buf)
	t.buf = t.buf[n:]
	t.progress.add(int64(n))
	return n, nil
}

func (t *tarStream) next() error {
	resp, err := t.stream.Recv()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("the agent ended the copy without saying it was done: %w", io.ErrUnexpectedEOF)
	}
	if err != nil {
		return &remoteError{err: err}
	}

	switch msg := resp.Msg.(type) {
	case *api.CopyResponse_Tar:
		t.buf = msg.Tar
	case *api.CopyResponse_Done:
		t.done = true
	}
	return nil
}

// sendTar sends src to the agent in chunks, then the end-of-stream mark.
func sendTar(stream api.Agent_CopyClient, src io.Reader, p *progress) error {
	buf := make([]byte, copyChunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			if sendErr := stream.Send(&api.CopyRequest{Msg: &api.CopyRequest_Tar{Tar: chunk}}); sendErr != nil {
				// The agent gave up; its reason comes with waitDone.
				return nil
			}
			p.add(int64(n))
		}
		if errors.Is(err, io.EOF) {
			return stream.Send(&api.CopyRequest{Msg: &api.CopyRequest_TarEof{TarEof: true}})
		}
		if err != nil {
			return err
		}
	}
}

// waitDone closes the sending side and waits for the agent's Done.
func waitDone(stream api.Agent_CopyClient) error {
	if err := stream.CloseSend(); err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.GetDone() != nil {
			return nil
		}
	}
}

// progressMin is the size below which no progress is drawn: small copies
// finish before a bar would be readable.
const progressMin = 4 << 20

// progress draws a one-line progress report on a terminal, at most a few
// times a second. On anything else it draws nothing.
type progress struct {
	out    io.Writer
	total  int64
	done   int64
	start  time.Time
	last   time.Time
	drawn  bool
	active bool
}

func newProgress(out io.Writer, total int64) *progress {
	return &progress{out: out, total: total, start: time.Now(), active: isTerminalWriter(out)}
}

func (p *progress) add(n int64) {
	p.done += n
	if !p.active || p.done < progressMin || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	rate := float64(p.done) / max(time.Since(p.start).Seconds(), 0.001) / (1 << 20)
	if p.total > 0 {
		pct := min(100, p.done*100/p.total)
		bar := int(pct / 5)
		fmt.Fprintf(p.out, "\r[%-20s] %3d%% %s of %s, %.1f MiB/s ", strings.Repeat("=", bar), pct,
			size(p.done), size(p.total), rate)
	} else {
		fmt.Fprintf(p.out, "\r%s copied, %.1f MiB/s ", size(p.done), rate)
	}
	p.drawn = true
}

// finish ends the progress line, if one was drawn.
func (p *progress) finish() {
	if p.drawn {
		p.draw()
		fmt.Fprintln(p.out)
	}
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func size(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
