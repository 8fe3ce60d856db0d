package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodedebug/nodedebug/agent/toolinit"
	"github.com/nodedebug/nodedebug/cri"
)

// envSession marks every process of a CRI-path tool container, so the
// agent can find a session's processes by their environment.
const envSession = "NODEDEBUG_SESSION"

// criStopTimeout is what StopContainer gives the tool's main process.
const criStopTimeout = 5

// criLauncher creates tool containers through CRI itself, in the target's
// pod sandbox, so it works with any CRI runtime. The container's main
// process is the agent's binary waiting; each session's command runs in it
// through CRI Exec, under the tool init.
type criLauncher struct {
	cri     *cri.Client
	toolbox string
	init    string
	// agent is the socket of this agent; it removes only its own leftovers.
	agent string
}

func newCRILauncher(ctx context.Context, client *cri.Client, cfg Config, init string) (*criLauncher, error) {
	l := &criLauncher{cri: client, toolbox: cfg.ToolboxImage, init: init, agent: cfg.Socket}
	if err := l.removeLeftovers(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *criLauncher) name() string { return PathCRI }

func (l *criLauncher) removeLeftovers(ctx context.Context) error {
	resp, err := l.cri.Runtime().ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("list leftover CRI tool containers: %w", err)
	}

	for _, c := range resp.GetContainers() {
		if c.GetLabels()[labelAgent] != l.agent {
			continue
		}
		t := &criTool{cri: l.cri, id: c.GetId(), session: c.GetLabels()[labelSession]}
		if err := t.remove(ctx); err != nil {
			return fmt.Errorf("remove leftover CRI tool container %s: %w", c.GetId(), err)
		}
	}
	return nil
}

func (l *criLauncher) launch(ctx context.Context, req *toolRequest) (tool, error) {
	in, err := toolSpecFor(req, ProcessConfig{})
	if err != nil {
		return nil, err
	}
	sandbox, err := l.cri.SandboxConfig(ctx, req.target.SandboxID)
	if err != nil {
		return nil, err
	}

	ref := req.start.Image
	if ref == "" {
		ref = l.toolbox
	}
	created, err := l.cri.Runtime().CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId:  req.target.SandboxID,
		Config:        ToolContainerConfig(req.id, ref, l.init, req.target, in.TTY, req.labels()),
		SandboxConfig: sandbox,
	})
	if err != nil {
		return nil, fmt.Errorf("create CRI tool container %s in pod %s: %w", req.id, req.target.PodString(), err)
	}

	t := &criTool{cri: l.cri, id: created.GetContainerId(), session: req.id, req: req, in: in,
		done: make(chan struct{})}
	return t, t.prepare(ctx)
}

// ToolContainerConfig is the CRI config of a tool container: the agent's
// binary waiting as main process, in the target's pid namespace and the
// pod's network and ipc. It does no I/O.
func ToolContainerConfig(id, image, init string, target *cri.Target, tty bool,
	labels map[string]string) *runtimeapi.ContainerConfig {
	// CRI Exec carries no environment: commands get the container's.
	env := []*runtimeapi.KeyValue{{Key: envSession, Value: []byte(id)}, {Key: "TARGET", Value: []byte(TargetDir)}}
	if tty {
		env = append(env, &runtimeapi.KeyValue{Key: "TERM", Value: []byte("xterm")})
	}
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: id},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  []string{InitPath, "pause"},
		Envs:     env,
		Labels:   labels,
		Mounts:   []*runtimeapi.Mount{{ContainerPath: InitPath, HostPath: init, Readonly: true}},
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			RunAsUser:    &runtimeapi.Int64Value{Value: 0},
			Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"SYS_PTRACE"}},
			NamespaceOptions: &runtimeapi.NamespaceOption{
				Network:  runtimeapi.NamespaceMode_POD,
				Ipc:      runtimeapi.NamespaceMode_POD,
				Pid:      runtimeapi.NamespaceMode_TARGET,
				TargetId: target.ContainerID,
			},
		}},
	}
}

// criTool is a CRI tool container and the session's exec in it.
type criTool struct {
	cri *cri.Client
	id  string
	// session marks the container's processes in their environment.
	session string
	req     *toolRequest
	in      ToolSpec
	main    int

	sizes     chan *remotecommand.TerminalSize
	done      chan struct{}
	closeOnce sync.Once
	// endStream cuts the exec stream; set once it started.
	endStream context.CancelFunc
}

// prepare starts the waiting main process, links /target in the tool's
// own root and checks that the command exists, through /proc of the
// main process: the agent sees the node's pid namespace.
func (t *criTool) prepare(ctx context.Context) error {
	if _, err := t.cri.Runtime().StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: t.id}); err != nil {
		return fmt.Errorf("start CRI tool container %s: %w", t.id, err)
	}
	pid, err := t.cri.ContainerPid(ctx, t.id)
	if err != nil {
		return err
	}
	t.main = pid

	targetPid, err := nsPid(t.in.TargetPid)
	if err != nil {
		return err
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	if err := linkTarget(root, targetPid); err != nil {
		return err
	}
	return lookPath(root, t.in.Args[0], t.in.Env)
}

func (t *criTool) pid() int { return t.main }

func (t *criTool) start(ctx context.Context) (<-chan exitStatus, error) {
	resp, err := t.cri.Runtime().Exec(ctx, &runtimeapi.ExecRequest{
		ContainerId: t.id,
		Cmd:         execCommand(t.in),
		Tty:         t.in.TTY,
		Stdin:       t.req.stdin != nil,
		Stdout:      true,
		Stderr:      !t.in.TTY,
	})
	if err != nil {
		return nil, fmt.Errorf("exec in CRI tool container %s: %w", t.id, err)
	}

	executor, err := newStreamExecutor(resp.GetUrl())
	if err != nil {
		return nil, err
	}

	// The stream outlives the client: when it is cut, the runtime kills
	// the exec'd tool init at once, before it can reap the session, whose
	// orphans would stay as zombies of the target's pid 1. remove ends the
	// session first, then the stream.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.endStream = cancel

	exits := make(chan exitStatus, 1)
	go func() {
		exits <- t.stream(streamCtx, executor)
		t.closeOnce.Do(func() { close(t.done) })
	}()
	return exits, nil
}

// execCommand runs the session's command under the tool init, which sets
// the initial terminal size: CRI Exec has no field for it.
func execCommand(in ToolSpec) []string {
	args := []string{InitPath, "init"}
	if in.TTY && in.Width > 0 && in.Height > 0 {
		args = append(args, fmt.Sprintf("%s%dx%d", toolinit.WinsizeFlag, in.Width, in.Height))
	}
	return append(append(args, "--"), in.Args...)
}

func newStreamExecutor(raw string) (remotecommand.Executor, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse streaming URL %q: %w", raw, err)
	}
	executor, err := remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
	if err != nil {
		return nil, fmt.Errorf("connect to the runtime's streaming server at %s: %w", u.Host, err)
	}
	return executor, nil
}

func (t *criTool) stream(ctx context.Context, executor remotecommand.Executor) exitStatus {
	opts := remotecommand.StreamOptions{Stdout: t.req.stdout, Tty: t.in.TTY}
	if t.req.stdin != nil {
		opts.Stdin = t.req.stdin
	}
	if !t.in.TTY {
		opts.Stderr = t.req.stderr
	} else {
		t.sizes = make(chan *remotecommand.TerminalSize, 4)
		t.sizes <- &remotecommand.TerminalSize{Width: uint16(t.in.Width), Height: uint16(t.in.Height)}
		opts.TerminalSizeQueue = sizeQueue(t.sizes)
	}

	err := executor.StreamWithContext(ctx, opts)
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		return exitStatus{}
	case errors.As(err, &exitErr):
		return exitStatus{code: int32(exitErr.ExitStatus())}
	}
	return exitStatus{err: fmt.Errorf("stream exec of CRI tool container %s: %w", t.id, err)}
}

type sizeQueue chan *remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	return <-q
}

func (t *criTool) resize(_ context.Context, width, height uint32) error {
	if t.sizes == nil {
		return nil
	}
	select {
	case t.sizes <- &remotecommand.TerminalSize{Width: uint16(width), Height: uint16(height)}:
	default:
		// Dropped rather than blocking the session's input.
	}
	return nil
}

// closeStdin has nothing to do: the stream half-closes stdin at EOF.
func (t *criTool) closeStdin(context.Context) error { return nil }

func (t *criTool) drained() <-chan struct{} { return t.done }

// remove ends the session's processes with SIGTERM, so the tool init
// reaps what they started, then stops and removes the container.
func (t *criTool) remove(ctx context.Context) error {
	if t.done != nil {
		t.closeOnce.Do(func() { close(t.done) })
	}
	terminateSession(ctx, t.session)
	if t.endStream != nil {
		t.endStream()
	}

	_, err := t.cri.Runtime().StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: t.id, Timeout: criStopTimeout})
	if err != nil {
		return fmt.Errorf("stop CRI tool container %s: %w", t.id, err)
	}
	_, err = t.cri.Runtime().RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: t.id})
	if err != nil {
		return fmt.Errorf("remove CRI tool container %s: %w", t.id, err)
	}
	return nil
}
