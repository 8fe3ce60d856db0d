package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodedebug/nodedebug/agent/toolinit"
	"github.com/nodedebug/nodedebug/api"
	"github.com/nodedebug/nodedebug/cri"
)

// drainTimeout bounds how long output is drained after the tool process
// exits: a background child may hold stdout open for ever.
const drainTimeout = 2 * time.Second

// session is one Attach call: a tool process and the stream it talks on.
type session struct {
	id     string
	agent  *Agent
	log    *slog.Logger
	start  *api.Start
	stream api.Agent_AttachServer
	out    *sender

	target *cri.Target
	tool   tool
	stdin  *stdinPipe
	stdout *outputWriter
	stderr *outputWriter

	// What the policy, the audit log and `nodedebug sessions` see.
	peer        peerInfo
	started     time.Time
	image       string
	imageDigest string
	custom      *AuditCustom
	audited     bool
	running     bool
	exitCode    *int32
	end         context.CancelCauseFunc
	listed      atomic.Pointer[listing]
	counters

	// exit is how the tool process ended, once it has.
	exit *api.Exit

	// detach is set for a session that outlives its client.
	detach     *detachState
	startedMsg *api.Started
}

// Attach serves one debug session.
func (a *Agent) Attach(stream api.Agent_AttachServer) error {
	a.sessions.Add(1)
	defer a.sessions.Done()

	start, err := readStart(stream)
	if err != nil {
		return err
	}
	switch {
	case start.Session != "":
		return a.reattach(stream, start)
	case start.Detach:
		return a.attachDetachable(stream, start)
	}

	s := a.newSession(stream, start)
	defer s.cleanup()

	ctx, cancel := s.limit(namespaces.WithNamespace(stream.Context(), Namespace))
	defer cancel()

	ctx, timing := withSpans(ctx)
	err = s.run(ctx)
	timing.report(s.log, "attach timing")
	s.report(ctx, err)
	return s.finish(ctx, err)
}

func readStart(stream api.Agent_AttachServer) (*api.Start, error) {
	first, err := stream.Recv()
	if err != nil {
		return nil, err
	}

	start := first.GetStart()
	if start.GetSession() != "" {
		return start, nil
	}
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
	s := &session{
		id:      id,
		agent:   a,
		start:   start,
		stream:  stream,
		out:     &sender{stream: stream},
		log:     a.log.With("session", id),
		peer:    callerOf(stream.Context()),
		started: time.Now(),
	}
	s.lastActive.Store(s.started.UnixNano())
	s.out.count = s.addOut
	s.stdout = newOutputWriter(s.out, false)
	s.stderr = newOutputWriter(s.out, true)
	if start.Stdin {
		s.stdin = newStdinPipe()
	}
	return s
}

func newSessionID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *session) toolID() string {
	return "nodedebug-" + s.id
}

func (s *session) run(ctx context.Context) error {
	if err := s.admit(); err != nil {
		return err
	}
	err := s.resolve(ctx)
	markSpan(ctx, "resolve")
	if err != nil {
		return err
	}
	if err := s.agent.checkExited(s.target); err != nil {
		return err
	}
	if err := s.admitImage(ctx); err != nil {
		return err
	}
	if err := s.auditStart(); err != nil {
		return err
	}

	if err := s.launch(ctx); err != nil {
		return err
	}
	if err := s.checkPidNamespace(); err != nil {
		return err
	}
	if err := s.sendStarted(); err != nil {
		return err
	}
	markSpan(ctx, "check_and_started")

	exits, err := s.tool.start(ctx)
	markSpan(ctx, "task_start")
	if err != nil {
		return err
	}

	s.running = true
	s.agent.metrics.sessionStarted(s.profileName(), s.started)
	s.log.Info("session started", "tool", s.toolID(), "pid", s.target.Pid)
	s.serveInput(ctx)
	return s.waitExit(ctx, exits)
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

func (s *session) launch(ctx context.Context) error {
	req := &toolRequest{
		id:     s.toolID(),
		agent:  s.agent.cfg.Socket,
		start:  s.start,
		target: s.target,
		log:    s.log,
		stdout: s.stdout,
		stderr: s.stderr,
	}
	if s.stdin != nil {
		req.stdin = s.stdin
	}

	tool, err := s.agent.launcher.launch(ctx, req)
	s.tool = tool
	return err
}

// checkPidNamespace makes sure the tool landed in the target's pid
// namespace before any of the user's code runs.
func (s *session) checkPidNamespace() error {
	if s.target.Exited {
		return nil
	}
	same, err := samePidNamespace(s.tool.pid(), s.target.Pid)
	if err != nil {
		return fmt.Errorf("check pid namespace of tool %s: %w", s.toolID(), err)
	}
	if !same {
		return fmt.Errorf("tool %s did not join the pid namespace of %s (pid %d); refusing to start it",
			s.toolID(), s.target, s.target.Pid)
	}
	return nil
}

// sendStarted tells the client the session is ready. It goes out before
// the tool process starts, so it always comes before the first output.
func (s *session) sendStarted() error {
	targetPid, err := targetNsPid(s.target.Pid, s.target.Exited)
	if err != nil {
		return err
	}

	s.startedMsg = &api.Started{
		Session:     s.id,
		ContainerId: s.toolID(),
		TargetPid:   int32(targetPid),
		TargetRoot:  TargetDir,
		Warnings:    s.warnings(),
		Tty:         s.start.Tty,
		Stdin:       s.start.Stdin,
	}
	err = s.out.send(&api.AttachResponse{Msg: &api.AttachResponse_Started{Started: s.startedMsg}})
	if err != nil {
		return fmt.Errorf("tell client the session started: %w", err)
	}

	if s.stdin != nil {
		s.stdin.onEOF = s.closeStdin
	}
	return nil
}

// closeStdin runs once the client's stdin has reached EOF and every byte
// before it was handed to the tool.
func (s *session) closeStdin() {
	ctx, cancel := cleanupContext()
	defer cancel()

	if err := s.tool.closeStdin(ctx); err != nil {
		s.log.Warn("close stdin of tool process", "error", err)
	}
}

func (s *session) waitExit(ctx context.Context, exits <-chan exitStatus) error {
	var result exitStatus
	select {
	case result = <-exits:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.agent.stopping:
		return ErrStopping
	}

	markSpan(ctx, "run")
	if result.err != nil {
		return fmt.Errorf("wait for tool %s: %w", s.toolID(), result.err)
	}
	s.drainOutput()
	s.stdout.flush()
	s.stderr.flush()
	markSpan(ctx, "drain")
	s.exitCode = &result.code

	exit := &api.Exit{Code: result.code}
	if s.targetGone() {
		// Otherwise a 137 would look like the user's command was killed.
		exit.Message = fmt.Sprintf("the target container %s stopped during the session, ending it", s.target)
	}
	s.log.Info("session ended", "exit_code", result.code, "target_gone", exit.Message != "")

	// finish sends it, after the audit record of the end is written: a
	// client that has the exit status can rely on the record being there.
	s.exit = exit
	return nil
}

// targetGone reports whether the target's main process has ended.
func (s *session) targetGone() bool {
	if s.target.Pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.target.Pid))
	if err != nil {
		return true
	}
	fields, ok := toolinit.StatFields(string(stat))
	if !ok || len(fields) == 0 {
		return true
	}
	return fields[0] == "Z" || fields[0] == "X"
}

// drainOutput waits, within a bound, for the output still in the pipes.
func (s *session) drainOutput() {
	select {
	case <-s.tool.drained():
	case <-time.After(drainTimeout):
		s.log.Info("output still open after the tool process exited; a background process holds it")
	}
}

// finish reports how the session ended. A command the tool image cannot
// run ends like a shell would end it, with 126 or 127 and a message, not
// as a failure of nodedebug.
func (s *session) finish(ctx context.Context, err error) error {
	var cmdErr *CommandError
	switch {
	case err == nil:
		return s.out.send(&api.AttachResponse{Msg: &api.AttachResponse_Exit{Exit: s.exit}})
	case errors.Is(context.Cause(ctx), ErrSessionEnded):
		s.log.Info("session ended by the agent", "reason", context.Cause(ctx))
		return status.Error(codes.Aborted, context.Cause(ctx).Error())
	case errors.As(err, &cmdErr):
		s.log.Info("command cannot run", "exit_code", cmdErr.Code, "error", err)
		return s.out.send(&api.AttachResponse{Msg: &api.AttachResponse_Exit{
			Exit: &api.Exit{Code: cmdErr.Code, Message: cmdErr.Message}}})
	case errors.Is(err, context.Canceled):
		s.log.Info("session ended: the client went away")
	case errors.Is(err, ErrStopping):
		s.log.Info("session ended: the agent is shutting down")
	default:
		s.log.Warn("session failed", "error", err)
	}
	return toStatus(err)
}

// cleanup removes the tool whatever happened to the session, on a context
// of its own so a vanished client cannot stop it.
func (s *session) cleanup() {
	if s.stdin != nil {
		s.stdin.abort()
	}
	s.stdout.close()
	s.stderr.close()
	if s.tool == nil {
		return
	}

	ctx, cancel := cleanupContext()
	defer cancel()

	started := time.Now()
	if err := s.tool.remove(ctx); err != nil {
		s.log.Error("remove tool", "tool", s.toolID(), "error", err)
	}
	s.log.Debug("tool removed", "remove_ms", millis(time.Since(started)))
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
	case errors.Is(err, ErrStopping):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, cri.ErrPodNotFound), errors.Is(err, cri.ErrContainerNotFound),
		errors.Is(err, ErrImageMissing), errors.Is(err, ErrNoSession):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrBusy):
		return status.Error(codes.ResourceExhausted, err.Error())
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
