package nsenter

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The environment that makes the constructor enter a target, and the
// descriptors the agent hands the re-executed binary.
const (
	EnvPid   = "NODEDEBUG_NSENTER_PID"
	EnvShare = "NODEDEBUG_NSENTER_SHARE"
	// EnvRootfs is the unpacked toolbox on the host; it is never written.
	EnvRootfs = "NODEDEBUG_NSENTER_ROOTFS"
	// EnvScratch is an empty host folder; the constructor mounts a tmpfs
	// on it, in the private mount namespace, for the overlay and the root.
	EnvScratch = "NODEDEBUG_NSENTER_SCRATCH"
	// envTestStop makes the constructor stop the child right after the
	// fork; only tests set it, never the agent.
	envTestStop = "NODEDEBUG_NSENTER_TEST_STOP"

	// ReportFD carries "pid N", "ready" or "error ..." lines to the agent.
	ReportFD = 3
	// GoFD delivers one byte when the command may start; EOF cancels.
	GoFD = 4
)

// TargetDir is where the target's root appears in the toolbox root.
const TargetDir = "/target"

// ChildOptions is what the re-executed child needs to run the command.
type ChildOptions struct {
	// TargetPid is the target's pid inside its own pid namespace.
	TargetPid int
	Cwd       string
}

// ErrCancelled means the agent closed the start pipe without a go.
var ErrCancelled = errors.New("session cancelled before the command started")

// Prepare runs in the child the constructor forked, now in the target's
// namespaces and already in the toolbox root the constructor built. It
// mounts /proc, links the target's root at /target, tells the agent it is
// ready and waits for the go. The caller then runs the command.
func Prepare(opts ChildOptions) error {
	report := os.NewFile(ReportFD, "report")
	start := os.NewFile(GoFD, "start")
	defer start.Close()

	for _, env := range []string{EnvPid, EnvShare, EnvRootfs, EnvScratch, envTestStop} {
		os.Unsetenv(env)
	}

	if err := finishRoot(opts); err != nil {
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

// finishRoot adds /proc of the target's pid namespace and the /target
// link to the toolbox root and enters the working folder.
func finishRoot(opts ChildOptions) error {
	if err := populate(opts.TargetPid); err != nil {
		return err
	}

	if err := os.Chdir(opts.Cwd); err != nil {
		return fmt.Errorf("change to working folder %s: %w", opts.Cwd, err)
	}
	return nil
}

func populate(targetPid int) error {
	// Mounted by a process inside the target's pid namespace, so it
	// shows the target's processes.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc of the target's pid namespace: %w", err)
	}

	if err := os.RemoveAll(TargetDir); err != nil {
		return fmt.Errorf("clear %s in toolbox root: %w", TargetDir, err)
	}
	dest := "/proc/" + strconv.Itoa(targetPid) + "/root"
	if err := os.Symlink(dest, TargetDir); err != nil {
		return fmt.Errorf("link %s to %s: %w", TargetDir, dest, err)
	}
	return nil
}
