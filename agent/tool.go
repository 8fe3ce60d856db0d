package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/nodedebug/nodedebug/cri"
)

// Labels on tool containers, so leftovers can be found after a crash.
const (
	labelSession = cri.LabelToolSession
	labelTarget  = "nodedebug.io/target"
	labelAgent   = "nodedebug.io/agent"
)

// Exit statuses a shell would use for a command that cannot run.
const (
	ExitCannotRun = 126
	ExitNotFound  = 127
)

// CommandError is a command the tool image cannot run; Code is 126 or 127.
type CommandError struct {
	Code    int32
	Message string
}

func (e *CommandError) Error() string { return e.Message }

// prepareRootfs readies a tool container's own writable snapshot: it links
// /target to the target's root and checks that the command exists. Only the
// tool's snapshot is written; the target's filesystem is never touched.
func prepareRootfs(ctx context.Context, mounts []mount.Mount, targetPid int, args, env []string) error {
	return mount.WithTempMount(ctx, mounts, func(root string) error {
		if err := linkTarget(root, targetPid); err != nil {
			return err
		}
		return lookPath(root, args[0], env)
	})
}

// linkTarget makes /target a symlink to /proc/<pid>/root, where pid is the
// target's pid as the tool container sees it.
func linkTarget(root string, targetPid int) error {
	link := filepath.Join(root, TargetDir)
	if err := os.RemoveAll(link); err != nil {
		return fmt.Errorf("clear %s in tool rootfs: %w", TargetDir, err)
	}
	if targetPid == 0 {
		// An exited target's files are mounted here instead.
		return os.Mkdir(link, 0o755)
	}

	dest := "/proc/" + strconv.Itoa(targetPid) + "/root"
	if err := os.Symlink(dest, link); err != nil {
		return fmt.Errorf("link %s to %s in tool rootfs: %w", TargetDir, dest, err)
	}
	return nil
}

// lookPath finds the command in the tool's rootfs the way the runtime will,
// so that a missing command is reported as 127 and an unrunnable one as 126
// without guessing from the runtime's error text.
func lookPath(root, command string, env []string) error {
	if outsideImage(command) {
		return nil
	}
	if strings.Contains(command, "/") {
		return checkExecutable(root, command, command)
	}

	for _, dir := range filepath.SplitList(envValue(env, "PATH")) {
		if dir == "" {
			continue
		}
		err := checkExecutable(root, path.Join(dir, command), command)
		var cmdErr *CommandError
		if !errors.As(err, &cmdErr) || cmdErr.Code != ExitNotFound {
			return err
		}
	}
	return &CommandError{Code: ExitNotFound, Message: fmt.Sprintf("%s: command not found in the tool image", command)}
}

// outsideImage reports whether a command path lies in what only exists
// once the tool runs, such as the target's files under /target: the tool
// init resolves those, with the same exit statuses.
func outsideImage(command string) bool {
	clean := path.Clean(command)
	for _, dir := range []string{TargetDir, "/proc", "/dev", "/sys"} {
		if clean == dir || strings.HasPrefix(clean, dir+"/") {
			return true
		}
	}
	return false
}

func checkExecutable(root, file, command string) error {
	full, err := securejoin.SecureJoin(root, file)
	if err != nil {
		return fmt.Errorf("resolve %s in tool rootfs: %w", file, err)
	}

	info, err := os.Stat(full)
	if errors.Is(err, os.ErrNotExist) {
		return &CommandError{Code: ExitNotFound, Message: fmt.Sprintf("%s: no such file in the tool image", command)}
	}
	if err != nil {
		return fmt.Errorf("stat %s in tool rootfs: %w", file, err)
	}

	if info.IsDir() || info.Mode()&0o111 == 0 {
		return &CommandError{Code: ExitCannotRun, Message: fmt.Sprintf("%s: not an executable file in the tool image", command)}
	}
	return nil
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// nsPid returns the pid of a host process inside its own pid namespace,
// from the last field of NSpid in /proc/<pid>/status.
func nsPid(hostPid int) (int, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hostPid))
	if err != nil {
		return 0, fmt.Errorf("read status of target pid %d (does the agent run with hostPID?): %w", hostPid, err)
	}
	return parseNSpid(string(status), hostPid)
}

func parseNSpid(status string, hostPid int) (int, error) {
	for line := range strings.Lines(status) {
		value, ok := strings.CutPrefix(line, "NSpid:")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			break
		}
		return strconv.Atoi(fields[len(fields)-1])
	}
	return 0, fmt.Errorf("no NSpid line in /proc/%d/status", hostPid)
}

// samePidNamespace reports whether two host processes share a pid namespace.
func samePidNamespace(a, b int) (bool, error) {
	var statA, statB unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", a), &statA); err != nil {
		return false, fmt.Errorf("stat pid namespace of pid %d: %w", a, err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", b), &statB); err != nil {
		return false, fmt.Errorf("stat pid namespace of pid %d: %w", b, err)
	}
	return statA.Ino == statB.Ino && statA.Dev == statB.Dev, nil
}

// removeContainer ends a tool container's session and deletes it with its
// snapshot. SIGTERM first lets the tool init kill and reap everything the
// session started, which shares the target's pid namespace and would
// otherwise leave zombies under the target's pid 1; SIGKILL to every
// process in the container follows if it does not finish in time.
func removeContainer(ctx context.Context, c containerd.Container) error {
	task, err := c.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("load task: %w", err)
	default:
		stopTask(ctx, task)
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	}

	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container: %w", err)
	}
	return nil
}

// stopGrace is how long the tool init gets to end a session by itself.
const stopGrace = 5 * time.Second

func stopTask(ctx context.Context, task containerd.Task) {
	status, err := task.Status(ctx)
	if err != nil || status.Status != containerd.Running {
		return
	}

	ctx, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()

	exited, err := task.Wait(ctx)
	if err != nil {
		return
	}
	if err := task.Kill(ctx, unix.SIGTERM); err != nil {
		return
	}
	select {
	case <-exited:
	case <-ctx.Done():
	}
}
