package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/term"

	"github.com/nodedebug/nodedebug/agent"
	"github.com/nodedebug/nodedebug/api"
)

// AttachOptions is everything `nodedebug attach` needs, free of cobra.
type AttachOptions struct {
	Namespace string
	Pod       string
	Container string
	Command   []string

	Stdin bool
	TTY   bool

	Image   string
	Profile string
	Share   []string
	// ShareSet tells an empty Share ("join nothing but pid") from an unset one.
	ShareSet bool

	Exited  bool
	Attempt int

	Reason string

	// Detach leaves the session running once it started; Session
	// reattaches to such a session instead of starting one.
	Detach  bool
	Session string
	// CustomFile is --custom; Custom is its content, read by Complete.
	CustomFile string
	Custom     []byte

	Agent string
	// AgentSet means --agent was given: attach on this node, not through
	// the API server with Kube.
	AgentSet bool
	Kube     *KubeFlags

	Streams
}

// Streams are a command's standard streams, injected so tests can drive
// commands without a terminal.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Complete fills the target from POD[/CONTAINER] and the command after --.
func (o *AttachOptions) Complete(args []string, dashAt int) error {
	if err := o.completeNamespace(); err != nil {
		return err
	}
	if o.Session != "" {
		return o.completeReattach(args)
	}
	if len(args) == 0 {
		return usageError("attach needs a pod: nodedebug attach POD[/CONTAINER] [-- COMMAND...]")
	}

	if dashAt == 0 {
		return usageError("attach needs a pod before --: nodedebug attach POD[/CONTAINER] -- %s", strings.Join(args, " "))
	}
	target, command := args[0], args[1:]
	if dashAt > 1 {
		return usageError("attach takes one POD[/CONTAINER] before --; got %s", strings.Join(args[:dashAt], " "))
	}
	if dashAt < 0 && len(command) > 0 {
		return usageError("put the command after --: nodedebug attach %s -- %s", target, strings.Join(command, " "))
	}
	o.Command = command

	pod, container, err := splitTarget(target, o.Container)
	if err != nil {
		return err
	}
	o.Pod, o.Container = pod, container

	if o.CustomFile != "" {
		if o.Custom, err = os.ReadFile(o.CustomFile); err != nil {
			return usageError("--custom: %v", err)
		}
	}

	// With no command, the user wants the toolbox's shell: interactive, and
	// on a terminal when there is one.
	if len(o.Command) == 0 && !o.Stdin {
		o.Stdin = true
		o.TTY = o.TTY || isTerminal(o.In)
	}
	// A detached shell gets a terminal of its own, for whoever reattaches.
	if o.Detach && len(o.Command) == 0 {
		o.TTY = true
	}
	return nil
}

// completeReattach takes the terminal from the session; stdin is passed
// when the session has one.
func (o *AttachOptions) completeReattach(args []string) error {
	if len(args) > 0 {
		return usageError("--session reattaches to a running session; give no POD or command")
	}
	o.Stdin = true
	o.TTY = o.TTY || isTerminal(o.In)
	return nil
}

// splitTarget reads POD or POD/CONTAINER; -c may name the container instead.
func splitTarget(target, flagContainer string) (pod, container string, err error) {
	target = strings.TrimPrefix(target, "pod/")
	target = strings.TrimPrefix(target, "pods/")

	pod, container, _ = strings.Cut(target, "/")
	switch {
	case pod == "":
		return "", "", usageError("%q names no pod", target)
	case strings.Contains(container, "/"):
		return "", "", usageError("%q: expected POD or POD/CONTAINER", target)
	case container != "" && flagContainer != "" && container != flagContainer:
		return "", "", usageError("%q names container %s but -c names %s; name it once", target, container, flagContainer)
	case container == "":
		container = flagContainer
	}
	return pod, container, nil
}

// Validate checks the flag combinations.
func (o *AttachOptions) Validate() error {
	if o.Namespace == "" {
		return usageError("the namespace is empty; pass -n NAMESPACE")
	}
	if o.Detach && o.Session != "" {
		return usageError("--detach starts a session and --session reattaches to one; pick one")
	}
	if err := o.validateCluster(); err != nil {
		return err
	}
	if err := validateAttempt(o.Attempt, o.Exited); err != nil {
		return err
	}
	if len(o.Custom) > 0 {
		if _, err := agent.ParseCustom(o.Custom); err != nil {
			return usageError("--custom %s: %v", o.CustomFile, err)
		}
	}
	for _, name := range o.Share {
		if name != "net" && name != "ipc" && name != "uts" {
			return usageError("--share %q: choose from net, ipc, uts", name)
		}
	}
	return nil
}

// Run attaches and returns the remote command's exit status.
func (o *AttachOptions) Run(ctx context.Context) error {
	if !o.Local() {
		return o.runCluster(ctx)
	}

	client, closeConn, err := dialAgent(o.Agent)
	if err != nil {
		return err
	}
	defer closeConn()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stream, err := client.Attach(ctx)
	if err != nil {
		return agentError(o.Agent, err)
	}

	term := o.terminal()
	out := &requestSender{stream: stream}
	if err := out.send(&api.AttachRequest{Msg: &api.AttachRequest_Start{Start: o.start(term)}}); err != nil {
		// A refused stream shows as EOF on send; its status comes on receive.
		if errors.Is(err, io.EOF) {
			_, err = stream.Recv()
		}
		return agentError(o.Agent, err)
	}
	return o.stream(ctx, cancel, stream, out, term)
}

// terminal returns the local terminal when -t can be honoured.
func (o *AttachOptions) terminal() *localTerminal {
	// A detached session's terminal is remote only.
	if !o.TTY || o.Detach {
		return nil
	}

	t, ok := newLocalTerminal(o.In, o.Out)
	if !ok {
		fmt.Fprintln(o.ErrOut, "nodedebug: stdin is not a terminal; running without -t")
		return nil
	}
	return t
}

func (o *AttachOptions) start(t *localTerminal) *api.Start {
	start := &api.Start{
		Target: &api.Target{
			Namespace: o.Namespace,
			Pod:       o.Pod,
			Container: o.Container,
			Exited:    o.Exited,
			Attempt:   int32(o.Attempt),
		},
		Command:  o.Command,
		Image:    o.Image,
		Stdin:    o.Stdin,
		Tty:      t != nil || (o.Detach && o.TTY),
		Share:    o.Share,
		ShareSet: o.ShareSet,
		Profile:  o.Profile,
		Reason:   o.Reason,
		Custom:   o.Custom,
		Detach:   o.Detach,
		Session:  o.Session,
	}
	if t != nil {
		start.Size = t.size()
	}
	return start
}

// stream waits for the session to start, then copies I/O both ways until
// the remote process exits.
func (o *AttachOptions) stream(ctx context.Context, leave context.CancelFunc, stream api.Agent_AttachClient,
	out *requestSender, t *localTerminal) error {
	first, err := stream.Recv()
	if err != nil {
		return agentError(o.Agent, err)
	}
	if exit := first.GetExit(); exit != nil {
		return o.exit(exit)
	}
	if first.GetStarted() == nil {
		return fmt.Errorf("agent at %s answered the attach with %T instead of Started", o.Agent, first.Msg)
	}
	started := first.GetStarted()
	for _, warning := range started.Warnings {
		fmt.Fprintf(o.ErrOut, "nodedebug: warning: %s\n", warning)
	}
	if o.Detach {
		// Leaving closes the stream; the agent keeps the session.
		fmt.Fprintf(o.Out, "session %s is running detached; reattach with: nodedebug attach --agent %s --session %s\n",
			started.Session, o.Agent, started.Session)
		return nil
	}
	if o.Session != "" {
		t = o.follow(started, t)
	}

	if t != nil {
		// Raw mode only when keystrokes go to the remote side: with -t
		// alone, Ctrl-C must still reach this process to end the session.
		if o.Stdin {
			restore, err := t.makeRaw()
			if err != nil {
				return err
			}
			defer restore()
		}
		go t.forwardResizes(ctx, out)
	}
	// left is set when the client leaves a reattached session because its
	// stdin ended.
	var left atomic.Bool
	if o.Stdin {
		go forwardStdin(o.In, out, o.onStdinEOF(out, leave, &left))
	}

	err = o.receive(stream)
	if left.Load() {
		fmt.Fprintf(o.ErrOut, "nodedebug: stdin ended: detached from session %s, which keeps running; "+
			"reattach with: nodedebug attach --agent %s --session %s\n", started.Session, o.Agent, started.Session)
		return nil
	}
	return err
}

// onStdinEOF says what the end of local stdin means: the remote process's
// stdin ends too, except on a reattached session, which outlives its
// clients: there the client leaves and the session keeps running.
func (o *AttachOptions) onStdinEOF(out *requestSender, leave context.CancelFunc, left *atomic.Bool) func() {
	if o.Session == "" {
		return func() {
			_ = out.send(&api.AttachRequest{Msg: &api.AttachRequest_StdinEof{StdinEof: true}})
		}
	}
	return func() {
		left.Store(true)
		leave()
	}
}

// follow adopts a reattached session's terminal and stdin.
func (o *AttachOptions) follow(started *api.Started, t *localTerminal) *localTerminal {
	o.Stdin = started.Stdin
	if !started.Tty {
		return nil
	}
	if t == nil {
		fmt.Fprintln(o.ErrOut, "nodedebug: warning: the session has a terminal but stdin is not one")
	}
	return t
}

func (o *AttachOptions) receive(stream api.Agent_AttachClient) error {
	for {
		resp, err := stream.Recv()
		if err != nil {
			return sessionError(o.Agent, err)
		}

		switch msg := resp.Msg.(type) {
		case *api.AttachResponse_Stdout:
			err = writeAll(o.Out, msg.Stdout)
		case *api.AttachResponse_Stderr:
			err = writeAll(o.ErrOut, msg.Stderr)
		case *api.AttachResponse_Exit:
			return o.exit(msg.Exit)
		}
		if err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
}

func writeAll(w io.Writer, data []byte) error {
	_, err := w.Write(data)
	return err
}

func (o *AttachOptions) exit(exit *api.Exit) error {
	if exit.Message != "" {
		fmt.Fprintf(o.ErrOut, "nodedebug: %s\n", exit.Message)
	}
	if exit.Code == 0 {
		return nil
	}
	return &ExitError{Code: int(exit.Code)}
}

// requestSender serialises sends from the stdin and resize goroutines.
type requestSender struct {
	mu     sync.Mutex
	stream api.Agent_AttachClient
}

func (s *requestSender) send(req *api.AttachRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream.Send(req)
}

// stdinChunk is large enough to keep a pipe's throughput, small enough to
// keep a terminal's keystrokes prompt.
const stdinChunk = 64 << 10

// forwardStdin copies local stdin to the remote process and then closes
// the remote stdin. It ends with stdin's EOF or the stream's end; reading a
// terminal may block until the process exits, which is harmless in a CLI.
func forwardStdin(in io.Reader, out *requestSender, onEOF func()) {
	buf := make([]byte, stdinChunk)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...)
			if out.send(&api.AttachRequest{Msg: &api.AttachRequest_Stdin{Stdin: data}}) != nil {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			onEOF()
			return
		}
		if err != nil {
			return
		}
	}
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// validateAttempt checks --attempt: unset (-1), or a restart attempt of an
// exited container, as CRI counts them.
func validateAttempt(attempt int, exited bool) error {
	switch {
	case attempt < -1 || attempt > math.MaxInt32:
		return usageError("--attempt %d: give a restart attempt from 0 to %d", attempt, math.MaxInt32)
	case attempt >= 0 && !exited:
		return usageError("--attempt picks an exited attempt; add --exited")
	}
	return nil
}
