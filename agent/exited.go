package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodedebug/nodedebug/cri"
)

// criNamespace is the containerd namespace kubelet's containers live in.
const criNamespace = "k8s.io"

// ErrNoSnapshot means the runtime no longer has an exited container's
// root filesystem.
var ErrNoSnapshot = errors.New("has no snapshot left")

// ErrExitedNeedsContainerd means the agent runs a path that cannot show an
// exited container's files.
var ErrExitedNeedsContainerd = errors.New("reading an exited container needs the agent's containerd path (--path containerd)")

// checkExited refuses an exited target on the CRI and nsenter paths before
// anything is created: only the containerd client can reach its snapshot.
func (a *Agent) checkExited(t *cri.Target) error {
	if !t.Exited {
		return nil
	}
	if _, ok := a.launcher.(*containerdLauncher); !ok {
		return fmt.Errorf("container %s is exited: %w", t, ErrExitedNeedsContainerd)
	}
	return nil
}

// exitedMounts returns mounts that show an exited container's root
// filesystem at dir, its writable layer included, and its volumes at their
// paths under dir, all read-only. It does no I/O.
//
// The writable layer becomes the top lower layer of a new overlay without
// an upper or work folder, so the mount can write nothing, not even
// overlay's own bookkeeping, to what containerd still owns.
func exitedMounts(snapshot []mount.Mount, volumes []*runtimeapi.Mount, dir string) ([]specs.Mount, error) {
	if len(snapshot) != 1 {
		return nil, fmt.Errorf("expected one mount for the snapshot, got %d", len(snapshot))
	}

	root, err := readOnlyMount(snapshot[0], dir)
	if err != nil {
		return nil, err
	}

	mounts := []specs.Mount{root}
	for _, v := range volumes {
		mounts = append(mounts, specs.Mount{
			Destination: path.Join(dir, path.Clean("/"+v.GetContainerPath())),
			Type:        "bind",
			Source:      v.GetHostPath(),
			Options:     []string{"rbind", "ro"},
		})
	}
	return mounts, nil
}

func readOnlyMount(m mount.Mount, dir string) (specs.Mount, error) {
	switch m.Type {
	case "overlay":
		return specs.Mount{Destination: dir, Type: "overlay", Source: "overlay",
			Options: readOnlyOverlay(m.Options)}, nil
	case "bind":
		opts := slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "rw" || o == "ro" })
		return specs.Mount{Destination: dir, Type: "bind", Source: m.Source,
			Options: append(opts, "ro")}, nil
	}
	return specs.Mount{}, fmt.Errorf("snapshot mount of type %q is not supported; use the overlayfs snapshotter", m.Type)
}

// readOnlyOverlay drops upperdir and workdir and puts the upper folder on
// top of the lower ones.
func readOnlyOverlay(options []string) []string {
	var upper string
	var out []string
	for _, o := range options {
		switch {
		case strings.HasPrefix(o, "upperdir="):
			upper = strings.TrimPrefix(o, "upperdir=")
		case strings.HasPrefix(o, "workdir="), o == "volatile", o == "rw", o == "ro":
		default:
			out = append(out, o)
		}
	}

	for i, o := range out {
		if lower, ok := strings.CutPrefix(o, "lowerdir="); ok && upper != "" {
			out[i] = "lowerdir=" + upper + ":" + lower
			upper = ""
		}
	}
	if upper != "" {
		// A snapshot with no parent: the upper folder is the only layer.
		out = append(out, "lowerdir="+upper)
	}
	return append(out, "ro")
}

// snapshotMounts asks containerd how the exited container's snapshot is
// mounted. It only reads: the snapshot stays containerd's.
func snapshotMounts(ctx context.Context, client *containerd.Client, t *cri.Target) ([]mount.Mount, error) {
	if client == nil {
		return nil, fmt.Errorf("container %s is exited: %w", t, ErrExitedNeedsContainerd)
	}
	if t.SnapshotKey == "" {
		return nil, fmt.Errorf("container %s %w: the runtime reports no snapshot key", t, ErrNoSnapshot)
	}

	snapshotter := cmpOr(t.Snapshotter, defaultSnapshotter)
	ctx = namespaces.WithNamespace(ctx, criNamespace)
	mounts, err := client.SnapshotService(snapshotter).Mounts(ctx, t.SnapshotKey)
	if err != nil {
		return nil, fmt.Errorf("container %s %w (snapshot %s: %v); it was removed by the runtime",
			t, ErrNoSnapshot, t.SnapshotKey, err)
	}
	return mounts, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// exitedToolSpec changes a tool spec for an exited target: it joins no
// namespace, since no process is left, and mounts the target's files.
func (l *containerdLauncher) exitedSpec(ctx context.Context, t *cri.Target, in *ToolSpec) error {
	snapshot, err := snapshotMounts(ctx, l.client, t)
	if err != nil {
		return err
	}

	mounts, err := exitedMounts(snapshot, existingVolumes(t.Mounts), TargetDir)
	if err != nil {
		return fmt.Errorf("mount the filesystem of exited container %s: %w", t, err)
	}

	in.Exited = true
	in.TargetMounts = mounts
	in.Share = nil
	return nil
}

// existingVolumes leaves out volumes whose host folder is gone, such as
// the emptyDir of a deleted pod, rather than failing the whole session.
func existingVolumes(volumes []*runtimeapi.Mount) []*runtimeapi.Mount {
	var out []*runtimeapi.Mount
	for _, v := range volumes {
		if _, err := os.Lstat(v.GetHostPath()); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// targetOpts joins the running target's namespaces, or mounts the exited
// target's files.
func targetOpts(in ToolSpec) ([]oci.SpecOpts, error) {
	if !in.Exited {
		return namespaceJoins(in.TargetPid, in.Share)
	}
	return []oci.SpecOpts{withMounts(in.TargetMounts)}, nil
}

func withMounts(mounts []specs.Mount) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Mounts = append(s.Mounts, mounts...)
		return nil
	}
}

// targetNsPid is the target's pid inside its own pid namespace; an exited
// target has none.
func targetNsPid(hostPid int, exited bool) (int, error) {
	if exited {
		return 0, nil
	}
	return nsPid(hostPid)
}

// mountExited mounts the exited target's files read-only at a new folder
// in the agent's own mount namespace, for copying out of it. The returned
// function unmounts everything and removes the folder.
func (a *Agent) mountExited(ctx context.Context, t *cri.Target) (string, func(), error) {
	snapshot, err := snapshotMounts(ctx, a.containerd, t)
	if err != nil {
		return "", nil, err
	}
	mounts, err := exitedMounts(snapshot, existingVolumes(t.Mounts), "/")
	if err != nil {
		return "", nil, fmt.Errorf("mount the filesystem of exited container %s: %w", t, err)
	}

	dir, err := os.MkdirTemp("", "nodedebug-exited-")
	if err != nil {
		return "", nil, fmt.Errorf("create mount folder for exited container %s: %w", t, err)
	}
	unmount := func() {
		_ = mount.UnmountRecursive(dir, unix.MNT_DETACH)
		_ = os.Remove(dir)
	}

	if err := mountAll(dir, mounts); err != nil {
		unmount()
		return "", nil, fmt.Errorf("mount the filesystem of exited container %s: %w", t, err)
	}
	return dir, unmount, nil
}

// mountAll mounts the root first, then each volume on a mount point that
// already exists in it: nothing can be created in a read-only tree.
func mountAll(dir string, mounts []specs.Mount) error {
	for i, m := range mounts {
		target := dir
		if i > 0 {
			var err error
			if target, err = securejoin.SecureJoin(dir, m.Destination); err != nil {
				return err
			}
			if _, err := os.Stat(target); err != nil {
				continue
			}
		}

		cm := mount.Mount{Type: m.Type, Source: m.Source, Options: m.Options}
		if err := cm.Mount(target); err != nil {
			return fmt.Errorf("mount %s at %s: %w", m.Source, filepath.Clean(m.Destination), err)
		}
	}
	return nil
}
