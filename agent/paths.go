package agent

import (
	"context"
	"fmt"
	"slices"

	"path/filepath"

	"github.com/nodedebug/nodedebug/cri"
)

// The ways the agent can start tool processes, chosen with --path.
const (
	PathAuto       = "auto"
	PathContainerd = "containerd"
	PathCRI        = "cri"
	PathNsenter    = "nsenter"
)

// Paths lists the values --path accepts.
var Paths = []string{PathAuto, PathContainerd, PathCRI, PathNsenter}

// ChoosePath returns the path to use for a runtime: what was asked for,
// or for auto the native containerd client on containerd and the CRI
// path on any other runtime. The containerd path needs containerd.
func ChoosePath(runtime, requested string) (string, error) {
	if requested == "" {
		requested = PathAuto
	}
	if !slices.Contains(Paths, requested) {
		return "", badRequest("--path %q: choose from auto, containerd, cri, nsenter", requested)
	}

	switch {
	case requested == PathAuto && runtime == "containerd":
		return PathContainerd, nil
	case requested == PathAuto:
		return PathCRI, nil
	case requested == PathContainerd && runtime != "containerd":
		return "", fmt.Errorf("--path containerd: the runtime is %s: %w; use --path cri or nsenter",
			runtime, ErrNotContainerd)
	}
	return requested, nil
}

// dialRuntime connects to the configured CRI socket, or finds one.
func dialRuntime(ctx context.Context, cfg Config) (*cri.Client, error) {
	if cfg.RuntimeEndpoint != "" {
		return cri.Dial(ctx, cfg.RuntimeEndpoint)
	}

	root := cfg.DetectRoot
	if root == "" {
		root = "/"
	}
	return cri.Detect(ctx, root, cri.Candidates)
}

// newLauncher sets up the chosen path; init is the installed binary.
func (a *Agent) newLauncher(ctx context.Context, path, init string) (launcher, error) {
	switch path {
	case PathCRI:
		return newCRILauncher(ctx, a.cri, a.cfg, init)
	case PathNsenter:
		return newNsenterLauncher(init, a.cfg.StateDir, a.cfg.ToolboxTar)
	}

	if err := a.connectContainerd(ctx); err != nil {
		return nil, err
	}
	if err := a.prepare(ctx); err != nil {
		return nil, err
	}
	return &containerdLauncher{
		client:     a.containerd,
		images:     a.images,
		toolbox:    a.cfg.ToolboxImage,
		fifoDir:    filepath.Join(a.cfg.StateDir, "fifo"),
		ociRuntime: a.cfg.OCIRuntime,
		init:       init,
	}, nil
}
