package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/nodedebug/nodedebug/nsenter"
)

// ErrNsenterUnavailable means the binary was built without the nsenter
// constructor (CGO_ENABLED=0).
var ErrNsenterUnavailable = errors.New("this nodedebug binary was built without the nsenter path")

// reportTimeout bounds the child's setup, from fork to "ready".
const reportTimeout = 15 * time.Second

// nsenterLauncher runs tool processes with no runtime at all: it
// re-executes the agent's binary into the target's namespaces, where it
// runs the unpacked toolbox with the target's root at /target.
type nsenterLauncher struct {
	// binary is the agent's own binary, installed in the state folder.
	binary  string
	rootfs  string
	scratch string
	image   ProcessConfig
}

// newNsenterLauncher unpacks the toolbox tar into the state folder.
func newNsenterLauncher(binary, stateDir, toolboxTar string) (*nsenterLauncher, error) {
	if !nsenter.Available {
		return nil, fmt.Errorf("%w: build it with cgo (make build)", ErrNsenterUnavailable)
	}
	if toolboxTar == "" {
		return nil, errors.New("the nsenter path runs the toolbox without a runtime: give --toolbox-tar")
	}

	dir := filepath.Join(stateDir, "toolbox")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear toolbox folder %s: %w", dir, err)
	}
	l := &nsenterLauncher{
		binary:  binary,
		rootfs:  filepath.Join(dir, "rootfs"),
		scratch: filepath.Join(dir, "scratch"),
	}
	for _, d := range []string{l.rootfs, l.scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}

	image, err := unpackImageTar(toolboxTar, l.rootfs)
	if err != nil {
		return nil, err
	}
	l.image = image
	return l, nil
}

func (l *nsenterLauncher) name() string { return "nsenter" }

func (l *nsenterLauncher) launch(ctx context.Context, req *toolRequest) (tool, error) {
	if req.start.Image != "" {
		return nil, badRequest("the nsenter path runs only the agent's toolbox; leave out --image")
	}
	in, err := toolSpecFor(req, l.image)
	if err != nil {
		return nil, err
	}
	if err := lookPath(l.rootfs, in.Args[0], in.Env); err != nil {
		return nil, err
	}

	targetPid, err := nsPid(in.TargetPid)
	markSpan(ctx, "prepare")
	if err != nil {
		return nil, err
	}

	t := &nsenterTool{id: req.id, exited: make(chan struct{}), done: make(chan struct{})}
	cmd := l.command(in, targetPid)
	err = t.startChild(ctx, cmd, req, in)
	markSpan(ctx, "fork_and_enter")
	if err != nil {
		return t, fmt.Errorf("enter the namespaces of pid %d for tool %s: %w", in.TargetPid, req.id, err)
	}
	return t, nil
}

// command re-executes the agent's binary; the constructor reads the
// environment, the child the flags.
func (l *nsenterLauncher) command(in ToolSpec, targetPid int) *exec.Cmd {
	args := []string{"nsenter-init",
		"--target-pid", strconv.Itoa(targetPid),
		"--cwd", in.Cwd,
		"--"}
	cmd := exec.Command(l.binary, append(args, in.Args...)...)
	cmd.Env = append(in.Env,
		nsenter.EnvPid+"="+strconv.Itoa(in.TargetPid),
		nsenter.EnvShare+"="+strings.Join(in.Share, ","),
		nsenter.EnvRootfs+"="+l.rootfs,
		nsenter.EnvScratch+"="+l.scratch)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// nsenterTool is the re-executed binary: a parent on the host that waits,
// and the child in the target's namespaces that runs the command.
type nsenterTool struct {
	id    string
	cmd   *exec.Cmd
	child int

	goPipe  *os.File
	stdin   *os.File
	console *os.File
	outputs []*os.File

	exited  chan struct{}
	waitErr error

	done     chan struct{}
	copiesWG sync.WaitGroup
	once     sync.Once
}

func (t *nsenterTool) startChild(ctx context.Context, cmd *exec.Cmd, req *toolRequest, in ToolSpec) error {
	report, reportW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer report.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		reportW.Close()
		return err
	}
	t.goPipe = goW
	cmd.ExtraFiles = []*os.File{reportW, goR}

	closeInChild, err := t.wireIO(cmd, req, in)
	if err == nil {
		err = cmd.Start()
	}
	closeAll(append(closeInChild, reportW, goR))
	if err != nil {
		return err
	}

	t.cmd = cmd
	go t.wait()
	return t.readReport(ctx, report)
}

func (t *nsenterTool) wait() {
	t.waitErr = t.cmd.Wait()
	close(t.exited)
}

// readReport reads the child's host pid and its "ready", or its error.
func (t *nsenterTool) readReport(ctx context.Context, report *os.File) error {
	lines := make(chan error, 1)
	go func() { lines <- t.parseReport(report) }()

	select {
	case err := <-lines:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(reportTimeout):
		return fmt.Errorf("no report from the child after %s", reportTimeout)
	}
}

func (t *nsenterTool) parseReport(report io.Reader) error {
	ready := false
	scanner := bufio.NewScanner(report)
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case strings.HasPrefix(line, "pid "):
			pid, err := strconv.Atoi(strings.TrimPrefix(line, "pid "))
			if err != nil {
				return fmt.Errorf("bad pid report %q", line)
			}
			t.child = pid
		case line == "ready":
			ready = true
		case strings.HasPrefix(line, "error "):
			return errors.New(strings.TrimPrefix(line, "error "))
		}
	}
	if t.child == 0 || !ready {
		return errors.New("the child ended before it was ready")
	}
	return nil
}

// wireIO connects stdio: a pty when the client asked for a terminal,
// pipes otherwise. It returns the ends the child keeps.
func (t *nsenterTool) wireIO(cmd *exec.Cmd, req *toolRequest, in ToolSpec) ([]*os.File, error) {
	if in.TTY {
		return t.wireTerminal(cmd, req, in)
	}

	var child []*os.File
	if req.stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdin, t.stdin = r, w
		child = append(child, r)
		go copyAndClose(w, req.stdin)
	}

	for _, out := range []struct {
		dst io.Writer
		set *io.Writer
	}{{req.stdout, &cmd.Stdout}, {req.stderr, &cmd.Stderr}} {
		r, w, err := os.Pipe()
		if err != nil {
			return child, err
		}
		*out.set = w
		child = append(child, w)
		t.forward(out.dst, r)
	}
	return child, nil
}

func (t *nsenterTool) wireTerminal(cmd *exec.Cmd, req *toolRequest, in ToolSpec) ([]*os.File, error) {
	console, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open a terminal: %w", err)
	}
	t.console = console
	if in.Width > 0 && in.Height > 0 {
		_ = pty.Setsize(console, &pty.Winsize{Cols: uint16(in.Width), Rows: uint16(in.Height)})
	}

	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	if req.stdin != nil {
		go func() { _, _ = io.Copy(console, req.stdin) }()
	}
	t.forward(req.stdout, console)
	return []*os.File{tty}, nil
}

func (t *nsenterTool) forward(dst io.Writer, src *os.File) {
	t.outputs = append(t.outputs, src)
	t.copiesWG.Add(1)
	go func() {
		defer t.copiesWG.Done()
		// A terminal ends with EIO once every holder has closed it.
		copyOutput(dst, src)
	}()
}

// growPipe gives a pipe outputPipe of room, so the tool keeps writing
// while the copy waits. A pty, or an agent without the privilege, keeps
// the default; Fd is not used because it makes reads block a thread.
func growPipe(f *os.File) {
	conn, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = conn.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, outputPipe)
	})
}

// A tool's output pipe holds outputPipe; the copy reads up to outputRead,
// more than the pipe fills with in the copy's pause at a few hundred MB/s.
const (
	outputPipe = 1 << 20
	outputRead = 256 << 10
)

// copyOutput copies a tool's output in large reads. A tool like head
// writes 4 KiB at a time, and reading each write as it lands cost a
// wake-up per 4 KiB; during a flood (a short read within linger of the
// last) it lets the pipe fill for linger/2 before reading again. Output
// after a pause is read at once.
func copyOutput(dst io.Writer, src *os.File) {
	growPipe(src)

	buf := make([]byte, outputRead)
	var last time.Time
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		if n < len(buf)/4 && time.Since(last) < linger {
			time.Sleep(linger / 2)
		}
		last = time.Now()
	}
}

func copyAndClose(w *os.File, r io.Reader) {
	_, _ = io.Copy(w, r)
	w.Close()
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

func (t *nsenterTool) pid() int { return t.child }

func (t *nsenterTool) start(ctx context.Context) (<-chan exitStatus, error) {
	_, err := t.goPipe.Write([]byte{1})
	t.goPipe.Close()
	if err != nil {
		return nil, fmt.Errorf("start tool %s: %w", t.id, err)
	}

	exits := make(chan exitStatus, 1)
	go func() {
		select {
		case <-t.exited:
			exits <- t.status()
		case <-ctx.Done():
			exits <- exitStatus{err: ctx.Err()}
		}
	}()
	return exits, nil
}

// status turns the parent's exit into the command's: the parent exits
// as its child did.
func (t *nsenterTool) status() exitStatus {
	var exitErr *exec.ExitError
	if t.waitErr != nil && !errors.As(t.waitErr, &exitErr) {
		return exitStatus{err: t.waitErr}
	}
	ws := t.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return exitStatus{code: 128 + int32(ws.Signal())}
	}
	return exitStatus{code: int32(ws.ExitStatus())}
}

func (t *nsenterTool) resize(_ context.Context, width, height uint32) error {
	if t.console == nil {
		return nil
	}
	return pty.Setsize(t.console, &pty.Winsize{Cols: uint16(width), Rows: uint16(height)})
}

// closeStdin has nothing to do: the copy closes the pipe at EOF.
func (t *nsenterTool) closeStdin(context.Context) error { return nil }

func (t *nsenterTool) drained() <-chan struct{} {
	t.once.Do(func() {
		go func() {
			t.copiesWG.Wait()
			close(t.done)
		}()
	})
	return t.done
}

// remove ends the session like the tool init's SIGTERM does in a
// container: the child kills and reaps what the session started. SIGKILL
// to both follows if it does not finish in time.
func (t *nsenterTool) remove(ctx context.Context) error {
	if t.goPipe != nil {
		t.goPipe.Close()
	}
	if t.cmd != nil {
		t.stop(ctx)
	}
	closeAll(append(t.outputs, t.stdin))
	return nil
}

func (t *nsenterTool) stop(ctx context.Context) {
	select {
	case <-t.exited:
		return
	default:
	}

	if t.child > 0 {
		_ = unix.Kill(t.child, unix.SIGTERM)
	}

	ctx, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()
	select {
	case <-t.exited:
		return
	case <-ctx.Done():
	}

	if t.child > 0 {
		_ = unix.Kill(t.child, unix.SIGKILL)
	}
	_ = t.cmd.Process.Kill()
	<-t.exited
}
