package nsenter

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// The environment that makes the constructor enter a target, and the
// descriptors the agent hands the re-executed binary.
const (
	EnvPid   = "NODEDEBUG_NSENTER_PID"
	EnvShare = "NODEDEBUG_NSENTER_SHARE"

	// ReportFD carries "pid N", "ready" or "error ..." lines to the agent.
	ReportFD = 3
	// GoFD delivers one byte when the command may start; EOF cancels.
	GoFD = 4
)

// TargetDir is where the target's root appears in the toolbox root.
const TargetDir = "/target"

// ChildOptions is what the re-executed child needs to run the command.
type ChildOptions struct {
	// Rootfs is the unpacked toolbox on the host; it is never written.
	Rootfs string
	// Scratch is an empty host folder; a tmpfs is mounted on it in the
	// private mount namespace, to hold the overlay and the new root.
	Scratch string
	// TargetPid is the target's pid inside its own pid namespace.
	TargetPid int
	Cwd       string
}

// ErrCancelled means the agent closed the start pipe without a go.
var ErrCancelled = errors.New("session cancelled before the command started")

// Prepare runs in the child the constructor forked, now in the target's
// namespaces and a private mount namespace. It builds the toolbox root
// with the target's root at /target, enters it, tells the agent it is
// ready and waits for the go. The caller then runs the command.
func Prepare(opts ChildOptions) error {
	report := os.NewFile(ReportFD, "report")
	start := os.NewFile(GoFD, "start")
	defer start.Close()

	os.Unsetenv(EnvPid)
	os.Unsetenv(EnvShare)

	if err := enterRoot(opts); err != nil {
		fmt.Fprintf(report, "error %v\n", err)
		report.Close()
		return err
	}
	fmt.Fprintln(report, "ready")
	report.Close()

	return waitForGo(start)
}

func waitForGo(start *os.File) error {
	var b [1]byte
	n, err := start.Read(b[:])
	if n == 1 {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return ErrCancelled
	}
	return fmt.Errorf("wait for the agent's go: %w", err)
}

// enterRoot mounts the toolbox as an overlay with a tmpfs upper layer,
// adds /proc of the target's pid namespace, /dev and the /target link,
// and pivots into it.
func enterRoot(opts ChildOptions) error {
	root, err := mountOverlay(opts.Rootfs, opts.Scratch)
	if err != nil {
		return err
	}

	if err := populate(root, opts.TargetPid); err != nil {
		return err
	}

	if err := pivot(root); err != nil {
		return err
	}

	if err := os.Chdir(opts.Cwd); err != nil {
		return fmt.Errorf("change to working folder %s: %w", opts.Cwd, err)
	}
	return nil
}

func mountOverlay(lower, scratch string) (string, error) {
	if err := unix.Mount("tmpfs", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return "", fmt.Errorf("mount tmpfs on %s: %w", scratch, err)
	}

	upper, work, root := filepath.Join(scratch, "upper"), filepath.Join(scratch, "work"), filepath.Join(scratch, "root")
	for _, dir := range []string{upper, work, root} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
	}

	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", root, "overlay", 0, data); err != nil {
		return "", fmt.Errorf("mount toolbox overlay of %s: %w", lower, err)
	}
	return root, nil
}

func populate(root string, targetPid int) error {
	for _, dir := range []string{"proc", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return fmt.Errorf("create /%s in toolbox root: %w", dir, err)
		}
	}

	// Mounted by a process inside the target's pid namespace, so it
	// shows the target's processes.
	proc := filepath.Join(root, "proc")
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc of the target's pid namespace: %w", err)
	}
	dev := filepath.Join(root, "dev")
	if err := unix.Mount("/dev", dev, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind /dev into toolbox root: %w", err)
	}

	link := filepath.Join(root, TargetDir)
	if err := os.RemoveAll(link); err != nil {
		return fmt.Errorf("clear %s in toolbox root: %w", TargetDir, err)
	}
	dest := "/proc/" + strconv.Itoa(targetPid) + "/root"
	if err := os.Symlink(dest, link); err != nil {
		return fmt.Errorf("link %s to %s: %w", TargetDir, dest, err)
	}
	return nil
}

// pivot makes root the process's root and drops the host's, so nothing
// of the node stays reachable but through /target and /proc.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter toolbox root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot into toolbox root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host root: %w", err)
	}
	return unix.Chdir("/")
}
