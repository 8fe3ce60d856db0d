package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/nodedebug/nodedebug/api"
)

// localTerminal is the user's terminal during a -t session.
type localTerminal struct {
	in  *os.File
	out *os.File
}

func newLocalTerminal(in io.Reader, out io.Writer) (*localTerminal, bool) {
	inFile, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(inFile.Fd())) {
		return nil, false
	}

	// The size comes from stdout when it is the terminal, else from stdin.
	outFile, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(outFile.Fd())) {
		outFile = inFile
	}
	return &localTerminal{in: inFile, out: outFile}, true
}

func (t *localTerminal) size() *api.TerminalSize {
	width, height, err := term.GetSize(int(t.out.Fd()))
	if err != nil || width <= 0 || height <= 0 {
		return nil
	}
	return &api.TerminalSize{Width: uint32(width), Height: uint32(height)}
}

// makeRaw puts the terminal in raw mode, so Ctrl-C and Ctrl-D reach the
// remote shell, and returns what restores it; callers defer that, so the
// terminal comes back on every exit path.
func (t *localTerminal) makeRaw() (func(), error) {
	state, err := term.MakeRaw(int(t.in.Fd()))
	if err != nil {
		return nil, fmt.Errorf("put terminal in raw mode: %w", err)
	}
	return func() { _ = term.Restore(int(t.in.Fd()), state) }, nil
}

// forwardResizes sends the terminal's size after each SIGWINCH until ctx
// ends. Sizes arriving while one is being sent are dropped but the latest:
// the channel holds one signal and the size is read when it is sent.
func (t *localTerminal) forwardResizes(ctx context.Context, out *requestSender) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	defer signal.Stop(winch)

	for {
		select {
		case <-ctx.Done():
			return
		case <-winch:
			size := t.size()
			if size == nil {
				continue
			}
			if out.send(&api.AttachRequest{Msg: &api.AttachRequest_Resize{Resize: size}}) != nil {
				return
			}
		}
	}
}
