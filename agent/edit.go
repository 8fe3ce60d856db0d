package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nodedebug/nodedebug/api"
)

// maxEditSize bounds the file an edit reads: it travels in one message and
// is opened in an editor.
const maxEditSize = 8 << 20

// ReadFile returns one file of a running target for an edit.
func (a *Agent) ReadFile(ctx context.Context, req *api.ReadFileRequest) (*api.ReadFileResponse, error) {
	op, err := a.beginFileOp(ctx, eventFileRead, req.GetTarget(), req.GetReason(), "edit", req.GetPath())
	if err != nil {
		return nil, fileStatus(err)
	}
	t, err := a.openTarget(ctx, req.GetTarget(), true)
	if err != nil {
		return nil, fileStatus(err)
	}
	defer t.close()
	if err := a.auditFileStart(op, t.target, nil); err != nil {
		return nil, fileStatus(err)
	}

	limit := maxEditSize
	if req.MaxSize > 0 && req.MaxSize < int64(limit) {
		limit = int(req.MaxSize)
	}
	f, err := t.root.ReadFile(req.Path, int64(limit))
	if err != nil {
		return nil, fileStatus(err)
	}

	return &api.ReadFileResponse{
		Content:      f.Content,
		Sha256:       f.SHA256,
		Mode:         f.Mode,
		Uid:          int32(f.UID),
		Gid:          int32(f.GID),
		MountPoint:   f.MountPoint,
		ResolvedPath: f.Path,
	}, nil
}

// WriteFile writes an edited file back and signals the target if asked.
func (a *Agent) WriteFile(ctx context.Context, req *api.WriteFileRequest) (*api.WriteFileResponse, error) {
	sig, err := parseSignal(req.Signal)
	if err != nil {
		return nil, fileStatus(err)
	}
	op, err := a.beginFileOp(ctx, eventFileWrite, req.GetTarget(), req.GetReason(), "edit", req.GetPath())
	if err != nil {
		return nil, fileStatus(err)
	}
	t, err := a.openTarget(ctx, req.GetTarget(), true)
	if err != nil {
		return nil, fileStatus(err)
	}
	defer t.close()
	if sig != 0 {
		op.signal = &AuditSignal{Name: signalName(sig), PID: t.target.Pid}
	}
	if err := a.auditFileStart(op, t.target, []AuditFile{fileDigest(req.Path, req.Content)}); err != nil {
		return nil, fileStatus(err)
	}

	log := a.log.With("pod", t.target.PodString(), "container", t.target.Container, "pid", t.target.Pid)
	written, err := t.root.WriteFile(req.Path, req.Content, req.ExpectedSha256)
	if err != nil {
		a.auditFileDone(op, nil, int64(len(req.Content)), 0, err)
		log.Warn("edit refused", "path", req.Path, "error", err)
		return nil, fileStatus(err)
	}
	log.Info("file edited", "path", written.Path, "in_place", written.InPlace)

	resp := &api.WriteFileResponse{ResolvedPath: written.Path, InPlace: written.InPlace}
	err = a.signalTarget(op, t, sig, log)
	a.auditFileDone(op, writtenFiles(written, req.Content), int64(len(req.Content)), 0, err)
	if err != nil {
		return nil, fileStatus(err)
	}
	if sig != 0 {
		resp.SignalledPid, resp.Signal = int32(t.target.Pid), "SIG"+signalName(sig)
	}
	return resp, nil
}

// signalTarget sends sig, if any, to the target's main process once the
// file is written, and notes in op whether it was sent. The pid is the
// container's main process as the runtime reports it, on the host: never
// the pause process, never a pid of another namespace.
func (a *Agent) signalTarget(op *fileOp, t *targetRoot, sig unix.Signal, log *slog.Logger) error {
	if sig == 0 {
		return nil
	}

	err := unix.Kill(t.target.Pid, sig)
	sent := err == nil
	op.signal.Sent = &sent
	if err != nil {
		op.signal.Error = err.Error()
		return fmt.Errorf("the file was written, but sending SIG%s to pid %d of %s failed: %w",
			op.signal.Name, t.target.Pid, t.target, err)
	}
	log.Info("signal sent", "signal", op.signal.Name)
	return nil
}

// signalName is "HUP" for SIGHUP, or the number of a signal without a
// name, such as a real-time one.
func signalName(sig unix.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return strings.TrimPrefix(name, "SIG")
	}
	return strconv.Itoa(int(sig))
}

// parseSignal reads "HUP", "SIGHUP" or a number; empty means none.
func parseSignal(name string) (unix.Signal, error) {
	if name == "" {
		return 0, nil
	}
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig, nil
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}

	var n int
	if _, err := fmt.Sscanf(name, "%d", &n); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	return 0, badRequest("unknown signal %q: use a name such as HUP or USR1, or a number", name)
}

// withHint adds what to do for the system errors a user can act on.
func withHint(err error) error {
	switch {
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%w; the file system is read-only there, so nothing was changed", err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w; check the path inside the container", err)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w; a part of the path is a file, not a folder", err)
	case errors.Is(err, unix.EISDIR):
		return fmt.Errorf("%w; a folder is in the way of a file", err)
	}
	return err
}
