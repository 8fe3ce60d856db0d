package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

const (
	defaultSnapshotter = "overlayfs"
	runcShim           = "io.containerd.runc.v2"
)

// containerdLauncher runs tool containers with the containerd client, in
// the agent's own containerd namespace.
type containerdLauncher struct {
	client  *containerd.Client
	images  *imageCache
	toolbox string
	fifoDir string
	// init is the host path of the tool init binary.
	init string
	// ociRuntime is the runtime binary for the runc shim; empty for the
	// shim's default.
	ociRuntime string
}

func (l *containerdLauncher) name() string {
	if l.ociRuntime != "" {
		return "containerd/" + l.ociRuntime
	}
	return "containerd"
}

func (l *containerdLauncher) launch(ctx context.Context, req *toolRequest) (tool, error) {
	ref := req.start.Image
	if ref == "" {
		ref = l.toolbox
	}
	image, err := l.images.get(ctx, ref)
	markSpan(ctx, "image")
	if err != nil {
		return nil, err
	}

	in, err := toolSpecFor(req, image.process)
	if err != nil {
		return nil, err
	}
	in.Init = l.init
	if req.target.Exited {
		if err := l.exitedSpec(ctx, req.target, &in); err != nil {
			return nil, err
		}
	}

	t := &containerdTool{client: l.client, id: req.id, fifoDir: l.fifoDir, done: make(chan struct{})}
	if err := l.createContainer(ctx, t, req, image, in); err != nil {
		return t, err
	}
	err = t.newTask(ctx, l.fifoDir, req)
	markSpan(ctx, "task_create")
	return t, err
}

// toolSpecFor gathers what the tool container's spec is built from.
func toolSpecFor(req *toolRequest, image ProcessConfig) (ToolSpec, error) {
	profile, err := LookupProfile(req.start.Profile)
	if err != nil {
		return ToolSpec{}, err
	}
	custom, err := decodeCustom(req.start.Custom)
	if err != nil {
		return ToolSpec{}, err
	}

	share := DefaultShare
	if req.start.ShareSet {
		share = req.start.Share
	}

	args, env, cwd := ResolveProcess(req.start.Command, image, req.start.Tty)
	size := req.start.GetSize()
	return ToolSpec{
		ID:        req.id,
		Args:      args,
		Env:       env,
		Cwd:       cwd,
		TTY:       req.start.Tty,
		Width:     size.GetWidth(),
		Height:    size.GetHeight(),
		Stdin:     req.stdin != nil,
		TargetPid: req.target.Pid,
		Share:     slices.Clone(share),
		Profile:   profile,
		Custom:    custom,
	}, nil
}

func (l *containerdLauncher) createContainer(ctx context.Context, t *containerdTool,
	req *toolRequest, image *toolImage, in ToolSpec) error {
	spec, err := BuildSpec(in)
	if err != nil {
		return err
	}
	adaptSpecForRuntime(spec, l.ociRuntime)

	// A lease keeps the new snapshot from garbage collection until the
	// container that owns it exists.
	ctx, done, err := l.client.WithLease(ctx)
	if err != nil {
		return fmt.Errorf("take a lease for tool container %s: %w", in.ID, err)
	}
	defer done(context.WithoutCancel(ctx))

	err = l.prepareSnapshot(ctx, t, image, in)
	markSpan(ctx, "snapshot_rootfs")
	if err != nil {
		return err
	}

	opts := []containerd.NewContainerOpts{
		containerd.WithSnapshotter(defaultSnapshotter),
		containerd.WithSnapshot(in.ID),
		containerd.WithImageName(image.image.Name()),
		containerd.WithSpec(spec),
		containerd.WithContainerLabels(req.labels()),
	}
	if l.ociRuntime != "" {
		opts = append(opts, containerd.WithRuntime(runcShim, &options.Options{BinaryName: l.ociRuntime}))
	}

	container, err := l.client.NewContainer(ctx, in.ID, opts...)
	markSpan(ctx, "container_create")
	if err != nil {
		return fmt.Errorf("create tool container %s: %w", in.ID, err)
	}
	t.container = container
	return nil
}

func (l *containerdLauncher) prepareSnapshot(ctx context.Context, t *containerdTool, image *toolImage, in ToolSpec) error {
	snapshotter := l.client.SnapshotService(defaultSnapshotter)
	mounts, err := snapshotter.Prepare(ctx, in.ID, image.chainID)
	if err != nil {
		return fmt.Errorf("prepare snapshot of tool container %s: %w", in.ID, err)
	}
	t.snapshot = in.ID

	targetPid, err := targetNsPid(in.TargetPid, in.Exited)
	if err != nil {
		return err
	}
	return prepareRootfs(ctx, mounts, targetPid, in.Args, in.Env)
}

// containerdTool is a tool container and its task.
type containerdTool struct {
	client  *containerd.Client
	id      string
	fifoDir string

	// snapshot is set once prepared, so remove can delete it even when
	// the container was never created.
	snapshot  string
	container containerd.Container
	task      containerd.Task

	done      chan struct{}
	drainOnce sync.Once
}

func (t *containerdTool) newTask(ctx context.Context, fifoDir string, req *toolRequest) error {
	task, err := t.container.NewTask(ctx, ioCreator(fifoDir, req))
	if err != nil {
		return fmt.Errorf("create task of tool container %s: %w", t.id, err)
	}
	t.task = task
	return nil
}

// ioCreator keeps each session's FIFOs in a folder named after it, so that
// a later agent can remove them if this one dies.
func ioCreator(fifoDir string, req *toolRequest) cio.Creator {
	opts := []cio.Opt{cio.WithFIFODir(filepath.Join(fifoDir, req.id)), cio.WithStreams(req.stdin, req.stdout, req.stderr)}
	if req.start.Tty {
		opts = append(opts, cio.WithTerminal)
	}
	return cio.NewCreator(opts...)
}

func (t *containerdTool) pid() int {
	return int(t.task.Pid())
}

func (t *containerdTool) start(ctx context.Context) (<-chan exitStatus, error) {
	waited, err := t.task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait for tool container %s: %w", t.id, err)
	}

	if err := t.task.Start(ctx); err != nil {
		return nil, &CommandError{Code: ExitCannotRun, Message: fmt.Sprintf("start tool container: %v", err)}
	}

	exits := make(chan exitStatus, 1)
	go func() {
		// waited is closed or delivers once the task exits or ctx ends.
		status, ok := <-waited
		if !ok {
			exits <- exitStatus{err: ctx.Err()}
			return
		}
		exits <- exitStatus{code: int32(status.ExitCode()), err: status.Error()}
	}()
	return exits, nil
}

func (t *containerdTool) resize(ctx context.Context, width, height uint32) error {
	return t.task.Resize(ctx, width, height)
}

// closeStdin is needed because the shim holds the stdin FIFO open itself:
// the process only sees EOF once told.
func (t *containerdTool) closeStdin(ctx context.Context) error {
	err := t.task.CloseIO(ctx, containerd.WithStdinCloser)
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

func (t *containerdTool) drained() <-chan struct{} {
	t.drainOnce.Do(func() {
		go func() {
			t.task.IO().Wait()
			close(t.done)
		}()
	})
	return t.done
}

func (t *containerdTool) remove(ctx context.Context) error {
	if t.container != nil {
		if err := removeContainer(ctx, t.container); err != nil {
			return fmt.Errorf("remove tool container %s: %w", t.id, err)
		}
	} else if t.snapshot != "" {
		err := t.client.SnapshotService(defaultSnapshotter).Remove(ctx, t.snapshot)
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove snapshot of tool container %s: %w", t.id, err)
		}
	}

	if t.task != nil {
		t.task.IO().Cancel()
		t.task.IO().Close()
	}
	removeFIFOs(t.fifoDir, t.id)
	return nil
}
