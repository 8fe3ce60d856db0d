package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodedebug/nodedebug/api"
	"github.com/nodedebug/nodedebug/cri"
	"github.com/nodedebug/nodedebug/fsroot"
)

// copyChunk is the size of the tar chunks sent to the client.
const copyChunk = 256 << 10

// ErrExitedWrite means a write was asked of a container that has exited.
var ErrExitedWrite = errors.New("is exited")

// targetRoot is a target's root filesystem, open for the agent's own I/O.
type targetRoot struct {
	target *cri.Target
	root   *fsroot.Root
	close  func()
}

// openTarget resolves ref and opens the target's root: /proc/<pid>/root of
// a running container, which shows its volumes too, or a read-only mount
// of an exited container's snapshot and volumes.
func (a *Agent) openTarget(ctx context.Context, ref *api.Target, write bool) (*targetRoot, error) {
	if ref.GetNamespace() == "" || ref.GetPod() == "" {
		return nil, badRequest("the target needs a namespace and a pod name")
	}
	if write && ref.GetExited() {
		return nil, badRequest("an exited container cannot be written to; copy out of it, or fix what the next attempt reads")
	}

	target, err := a.cri.Resolve(ctx, cri.Ref{Namespace: ref.Namespace, Pod: ref.Pod,
		Container: ref.Container, Exited: ref.Exited, Attempt: int(ref.Attempt)})
	if write && errors.Is(err, cri.ErrExited) {
		return nil, fmt.Errorf("container %s/%s %w: nothing was written; copy out of it with --exited",
			ref.Namespace, ref.Pod, ErrExitedWrite)
	}
	if err != nil {
		return nil, err
	}
	return a.openRoot(ctx, target)
}

func (a *Agent) openRoot(ctx context.Context, target *cri.Target) (*targetRoot, error) {
	dir, release := "/proc/"+strconv.Itoa(target.Pid)+"/root", func() {}
	if target.Exited {
		var err error
		if dir, release, err = a.mountExited(ctx, target); err != nil {
			return nil, err
		}
	}

	root, err := fsroot.Open(dir, "container "+target.String())
	if err != nil {
		release()
		return nil, err
	}
	return &targetRoot{target: target, root: root, close: func() { root.Close(); release() }}, nil
}

// Copy serves one `nodedebug cp`: a tar stream out of the target, or into it.
func (a *Agent) Copy(stream api.Agent_CopyServer) error {
	a.sessions.Add(1)
	defer a.sessions.Done()

	first, err := stream.Recv()
	if err != nil {
		return err
	}
	header := first.GetHeader()
	if header == nil || header.GetPath() == "" {
		return status.Error(codes.InvalidArgument, "the first message of a copy must be a header with a path")
	}

	log := a.log.With("session", newSessionID(), "pod", header.GetTarget().GetPod(),
		"container", header.GetTarget().GetContainer())
	err = a.copy(stream, header, log)
	if err != nil {
		log.Warn("copy failed", "path", header.Path, "to_target", header.ToTarget, "error", err)
		return fileStatus(err)
	}
	return nil
}

func (a *Agent) copy(stream api.Agent_CopyServer, header *api.CopyHeader, log *slog.Logger) error {
	op, err := a.beginFileOp(stream.Context(), copyEvent(header.ToTarget), header.Target, header.Reason,
		"cp", header.Path)
	if err != nil {
		return err
	}
	t, err := a.openTarget(stream.Context(), header.Target, header.ToTarget)
	if err != nil {
		return err
	}
	defer t.close()
	if err := a.auditFileStart(op, t.target, nil); err != nil {
		return err
	}

	var stats fsroot.Stats
	var files []AuditFile
	if header.ToTarget {
		stats, files, err = copyIn(stream, t.root, header.Path)
		a.auditFileDone(op, files, stats.Bytes, 0, err)
	} else {
		stats, err = t.root.Pack(&tarSender{stream: stream}, header.Path)
		a.auditFileDone(op, nil, 0, stats.Bytes, err)
	}
	if err != nil {
		return err
	}

	log.Info("copy done", "path", header.Path, "to_target", header.ToTarget,
		"pid", t.target.Pid, "files", stats.Files, "bytes", stats.Bytes)
	return stream.Send(&api.CopyResponse{Msg: &api.CopyResponse_Done{Done: &api.CopyDone{
		Files: stats.Files, Bytes: stats.Bytes}}})
}

// copyIn unpacks the client's tar stream at p; the audit entry it returns
// has the stream's sha256.
func copyIn(stream api.Agent_CopyServer, root *fsroot.Root, p string) (fsroot.Stats, []AuditFile, error) {
	dst, err := root.Destination(p)
	if err != nil {
		return fsroot.Stats{}, nil, err
	}

	src := newHashingReader(&tarReceiver{stream: stream})
	stats, err := root.Unpack(src, dst, fsroot.UnpackOptions{Chown: true})
	if err != nil {
		return stats, []AuditFile{src.file(p)}, err
	}

	// The tar stream ends before the client's end-of-stream mark; read up
	// to it so a truncated upload is told from a complete one.
	_, err = io.Copy(io.Discard, src)
	return stats, []AuditFile{src.file(p)}, err
}

func copyEvent(toTarget bool) string {
	if toTarget {
		return eventCopyIn
	}
	return eventCopyOut
}

// tarSender cuts a tar stream into messages.
type tarSender struct {
	stream api.Agent_CopyServer
}

func (s *tarSender) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += copyChunk {
		end := min(off+copyChunk, len(p))
		chunk := append([]byte(nil), p[off:end]...)
		if err := s.stream.Send(&api.CopyResponse{Msg: &api.CopyResponse_Tar{Tar: chunk}}); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// tarReceiver reads the client's tar chunks as one stream, up to tar_eof.
type tarReceiver struct {
	stream api.Agent_CopyServer
	buf    []byte
	eof    bool
}

func (r *tarReceiver) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}

	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *tarReceiver) next() error {
	req, err := r.stream.Recv()
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}

	switch msg := req.Msg.(type) {
	case *api.CopyRequest_Tar:
		r.buf = msg.Tar
	case *api.CopyRequest_TarEof:
		r.eof = true
	}
	return nil
}

// fileStatus maps a copy or edit failure to a gRPC status whose message is
// shown to the user as is.
func fileStatus(err error) error {
	switch {
	case errors.Is(err, fsroot.ErrChanged):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, fsroot.ErrEscapes), errors.Is(err, fsroot.ErrNotFile),
		errors.Is(err, fsroot.ErrTooLarge):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrExitedWrite), errors.Is(err, ErrNoSnapshot), errors.Is(err, ErrExitedNeedsContainerd):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return toStatus(withHint(err))
}

func (s *service) Copy(stream api.Agent_CopyServer) error {
	return s.agent.Copy(stream)
}

func (s *service) ReadFile(ctx context.Context, req *api.ReadFileRequest) (*api.ReadFileResponse, error) {
	return s.agent.ReadFile(ctx, req)
}

func (s *service) WriteFile(ctx context.Context, req *api.WriteFileRequest) (*api.WriteFileResponse, error) {
	return s.agent.WriteFile(ctx, req)
}
