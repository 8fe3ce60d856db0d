package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodedebug/nodedebug/api"
	"github.com/nodedebug/nodedebug/cri"
)

// drainTimeout bounds how long output is drained after the tool process
// exits: a background child may hold stdout open for ever.
const drainTimeout = 2 * time.Second

// session is one Attach call: a tool container and the stream it talks on.
type session struct {
	id     string
	agent  *Agent
	log    *slog.Logger
	start  *api.Start
	stream api.Agent_AttachServer
	out    *sender

	target    *cri.Target
	container containerd.Container
	task      containerd.Task
	stdin     *stdinPipe
}

// Attach serves one debug session.
func (a *Agent) Attach(stream api.Agent_AttachServer) error {
	a.sessions.Add(1)
	defer a.sessions.Done()

	start, err := readStart(stream)
	if err != nil {
		return err
	}

	s := a.newSession(stream, start)
	defer s.cleanup()

	err = s.run(namespaces.WithNamespace(stream.Context(), Namespace))

	// A command the tool image cannot run ends like a shell would end it:
	// with status 126 or 127 and a message, not as a failure of nodedebug.
	var cmdErr *CommandError
	if errors.As(err, &cmdErr) {
		s.log.Info("command cannot run", "exit_code", cmdErr.Code, "error", err)
		return s.out.send(&api.AttachResponse{Msg: &api.AttachResponse_Exit{
			Exit: &api.Exit{Code: cmdErr.Code, Message: cmdErr.Message}}})
	}
	if errors.Is(err, context.Canceled) {
		s.log.Info("session ended: the client went away")
		return toStatus(err)
	}
	if err != nil {
		s.log.Warn("session failed", "error", err)
		return toStatus(err)
	}
	return nil
}

func readStart(stream api.Agent_AttachServer) (*api.Start, error) {
	first, err := stream.Recv()
	if err != nil {
		return nil, err
	}

	start := first.GetStart()
	if start == nil || start.GetTarget() == nil {
		return nil, status.Error(codes.InvalidArgument, "the first message of an attach must be a Start with a target")
	}
	if start.Target.Namespace == "" || start.Target.Pod == "" {
		return nil, status.Error(codes.InvalidArgument, "the target needs a namespace and a pod name")
	}
	return start, nil
}

func (a *Agent) newSession(stream api.Agent_AttachServer, start *api.Start) *session {
	id := newSessionID()
	return &session{
		id:     id,
		agent:  a,
		start:  start,
		stream: stream,
		out:    &sender{stream: stream},
		log:    a.log.With("session", id),
	}
}

func newSessionID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *session) containerID() string {
	return "nodedebug-" + s.id
}

func (s *session) run(ctx context.Context) error {
	if err := s.resolve(ctx); err != nil {
		return err
	}

	if err := s.createContainer(ctx); err != nil {
		return err
	}

	exited, err := s.startTask(ctx)
	if err != nil {
		return err
	}

	s.log.Info("session started", "tool", s.containerID(), "pid", s.target.Pid)
	go s.forwardInput(ctx)
	return s.waitExit(ctx, exited)
}

// sendStarted tells the client the session is ready. It goes out before
// the tool process starts, so it always comes before the first output.
func (s *session) sendStarted() error {
	targetPid, err := nsPid(s.target.Pid)
	if err != nil {
		return err
	}

	err = s.out.send(&api.AttachResponse{Msg: &api.AttachResponse_Started{Started: &api.Started{
		Session:     s.id,
		ContainerId: s.containerID(),
		TargetPid:   int32(targetPid),
		TargetRoot:  TargetDir,
	}}})
	if err != nil {
		return fmt.Errorf("tell client the session started: %w", err)
	}
	return nil
}

func (s *session) resolve(ctx context.Context) error {
	t := s.start.Target
	target, err := s.agent.cri.Resolve(ctx, cri.Ref{
		Namespace: t.Namespace,
		Pod:       t.Pod,
		Container: t.Container,
		Exited:    t.Exited,
		Attempt:   int(t.Attempt),
	})
	if err != nil {
		return err
	}

	s.target = target
	s.log = s.log.With("pod", target.PodString(), "container", target.Container,
		"container_id", target.ContainerID)
	return nil
}

// toolSpec gathers what the tool container's spec is built from.
func (s *session) toolSpec(image *toolImage) (ToolSpec, error) {
	profile, err := LookupProfile(s.start.Profile)
	if err != nil {
		return ToolSpec{}, err
	}

	share := DefaultShare
	if s.start.ShareSet {
		share = s.start.Share
	}

	args, env, cwd := ResolveProcess(s.start.Command, image.process, s.start.Tty)
	size := s.start.GetSize()
	return ToolSpec{
		ID:        s.containerID(),
		Args:      args,
		Env:       env,
		Cwd:       cwd,
		TTY:       s.start.Tty,
		Width:     size.GetWidth(),
		Height:    size.GetHeight(),
		Stdin:     s.start.Stdin,
		TargetPid: s.target.Pid,
		Share:     slices.Clone(share),
		Profile:   profile,
	}, nil
}

func (s *session) createContainer(ctx context.Context) error {
	ref := s.start.Image
	if ref == "" {
		ref = s.agent.cfg.ToolboxImage
	}
	image, err := s.agent.images.get(ctx, ref)
	if err != nil {
		return err
	}

	in, err := s.toolSpec(image)
	if err != nil {
		return err
	}
	spec, err := BuildSpec(in)
	if err != nil {
		return err
	}

	// A lease keeps the new snapshot from garbage collection until the
	// container that owns it exists.
	ctx, done, err := s.agent.containerd.WithLease(ctx)
	if err != nil {
		return fmt.Errorf("take a lease for tool container %s: %w", in.ID, err)
	}
	defer done(context.WithoutCancel(ctx))

	if err := s.prepareSnapshot(ctx, image, in); err != nil {
		return err
	}

	opts := []containerd.NewContainerOpts{
		containerd.WithSnapshotter(defaultSnapshotter),
		containerd.WithSnapshot(in.ID),
		containerd.WithImageName(image.image.Name()),
		containerd.WithSpec(spec),
		containerd.WithContainerLabels(map[string]string{
			labelSession: s.id,
			labelTarget:  s.target.String(),
		}),
	}
	if runtime := s.agent.cfg.OCIRuntime; runtime != "" {
		opts = append(opts, containerd.WithRuntime(runcShim, &options.Options{BinaryName: runtime}))
	}

	container, err := s.agent.containerd.NewContainer(ctx, in.ID, opts...)
	if err != nil {
		s.removeSnapshot(in.ID)
		return fmt.Errorf("create tool container %s: %w", in.ID, err)
	}
	s.container = container
	return nil
}

const (
	defaultSnapshotter = "overlayfs"
	runcShim           = "io.containerd.runc.v2"
)

func (s *session) prepareSnapshot(ctx context.Context, image *toolImage, in ToolSpec) error {
	snapshotter := s.agent.containerd.SnapshotService(defaultSnapshotter)
	mounts, err := snapshotter.Prepare(ctx, in.ID, image.chainID)
	if err != nil {
		return fmt.Errorf("prepare snapshot of tool container %s: %w", in.ID, err)
	}

	targetPid, err := nsPid(in.TargetPid)
	if err == nil {
		err = prepareRootfs(ctx, mounts, targetPid, in.Args, in.Env)
	}
	if err != nil {
		s.removeSnapshot(in.ID)
		return err
	}
	return nil
}

func (s *session) removeSnapshot(key string) {
	ctx, cancel := cleanupContext()
	defer cancel()

	err := s.agent.containerd.SnapshotService(defaultSnapshotter).Remove(ctx, key)
	if err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("remove tool snapshot", "snapshot", key, "error", err)
	}
}

// startTask creates the task, checks it landed in the target's pid
// namespace before any of the user's code runs, then starts it.
func (s *session) startTask(ctx context.Context) (<-chan containerd.ExitStatus, error) {
	creator, stdin := s.ioCreator()
	task, err := s.container.NewTask(ctx, creator)
	if err != nil {
		return nil, fmt.Errorf("create task of tool container %s: %w", s.containerID(), err)
	}
	s.task = task
	s.stdin = stdin

	if err := s.checkPidNamespace(); err != nil {
		return nil, err
	}

	exited, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait for tool container %s: %w", s.containerID(), err)
	}

	if stdin != nil {
		stdin.onEOF = s.closeStdin
	}
	if err := s.sendStarted(); err != nil {
		return nil, err
	}
	if err := task.Start(ctx); err != nil {
		return nil, &CommandError{Code: ExitCannotRun,
			Message: fmt.Sprintf("start %s in tool container: %v", s.start.Command, err)}
	}
	return exited, nil
}

func (s *session) ioCreator() (cio.Creator, *stdinPipe) {
	var stdin *stdinPipe
	streams := []cio.Opt{cio.WithFIFODir(s.agent.cfg.FIFODir)}

	stdout := &outputWriter{out: s.out}
	stderr := &outputWriter{out: s.out, stderr: true}
	if s.start.Stdin {
		stdin = newStdinPipe()
		streams = append(streams, cio.WithStreams(stdin, stdout, stderr))
	} else {
		streams = append(streams, cio.WithStreams(nil, stdout, stderr))
	}

	if s.start.Tty {
		streams = append(streams, cio.WithTerminal)
	}
	return cio.NewCreator(streams...), stdin
}

func (s *session) checkPidNamespace() error {
	same, err := samePidNamespace(int(s.task.Pid()), s.target.Pid)
	if err != nil {
		return fmt.Errorf("check pid namespace of tool container %s: %w", s.containerID(), err)
	}
	if !same {
		return fmt.Errorf("tool container %s did not join the pid namespace of %s (pid %d); refusing to start it",
			s.containerID(), s.target, s.target.Pid)
	}
	return nil
}

// closeStdin runs when the client's stdin reaches EOF: the shim keeps the
// stdin FIFO open itself, so the process only sees EOF once told.
func (s *session) closeStdin() {
	ctx, cancel := cleanupContext()
	defer cancel()

	if err := s.task.CloseIO(ctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("close stdin of tool process", "error", err)
	}
}

func (s *session) waitExit(ctx context.Context, exited <-chan containerd.ExitStatus) error {
	var result containerd.ExitStatus
	select {
	case result = <-exited:
	case <-ctx.Done():
		return ctx.Err()
	}

	if err := result.Error(); err != nil {
		return fmt.Errorf("wait for tool container %s: %w", s.containerID(), err)
	}
	s.drainOutput()

	code := int32(result.ExitCode())
	s.log.Info("session ended", "exit_code", code)
	return s.out.send(&api.AttachResponse{Msg: &api.AttachResponse_Exit{Exit: &api.Exit{Code: code}}})
}

// drainOutput waits, within a bound, for the output still in the pipes.
func (s *session) drainOutput() {
	drained := make(chan struct{})
	go func() {
		s.task.IO().Wait()
		close(drained)
	}()

	select {
	case <-drained:
	case <-time.After(drainTimeout):
		s.log.Info("output still open after the tool process exited; a background process holds it")
	}
}

// cleanup removes the tool container whatever happened to the session,
// on a context of its own so a vanished client cannot stop it.
func (s *session) cleanup() {
	if s.stdin != nil {
		s.stdin.abort()
	}
	if s.container == nil {
		return
	}

	ctx, cancel := cleanupContext()
	defer cancel()

	if err := removeContainer(ctx, s.container); err != nil {
		s.log.Error("remove tool container", "tool", s.containerID(), "error", err)
	}
	if s.task != nil {
		s.task.IO().Cancel()
		s.task.IO().Close()
	}
}

func cleanupContext() (context.Context, context.CancelFunc) {
	ctx := namespaces.WithNamespace(context.Background(), Namespace)
	return context.WithTimeout(ctx, cleanupTimeout)
}

// toStatus turns a session error into a gRPC status whose code tells the
// client what kind of failure it was; the message is shown as is.
func toStatus(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, cri.ErrPodNotFound), errors.Is(err, cri.ErrContainerNotFound),
		errors.Is(err, ErrImageMissing):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, cri.ErrAmbiguous), errors.Is(err, ErrBadRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, cri.ErrExited), errors.Is(err, cri.ErrNotRunning),
		errors.Is(err, cri.ErrNoExitedAttempt):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// ErrBadRequest marks a request the agent cannot act on as given.
var ErrBadRequest = errors.New("bad request")

// requestError is a bad request with a message meant for the user.
type requestError struct{ msg string }

func (e *requestError) Error() string        { return e.msg }
func (e *requestError) Is(target error) bool { return target == ErrBadRequest }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}
