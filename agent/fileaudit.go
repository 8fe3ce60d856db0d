package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/nodedebug/nodedebug/api"
	"github.com/nodedebug/nodedebug/cri"
	"github.com/nodedebug/nodedebug/fsroot"
)

// Audit events of cp and edit. The first record of each is written before
// any file is touched, and without it nothing is.
const (
	eventCopyIn    = "copy.in"
	eventCopyOut   = "copy.out"
	eventFileRead  = "file.read"
	eventFileWrite = "file.write"
	// eventFileDone records how a cp or edit ended.
	eventFileDone = "file.done"
)

// fileOp is one cp or edit as the audit log sees it.
type fileOp struct {
	id      string
	event   string
	peer    peerInfo
	reason  string
	ref     *api.Target
	target  *cri.Target
	command []string
	started time.Time
	// signal is what an edit sends after writing, nil for none.
	signal *AuditSignal
}

// beginFileOp applies the policy to a cp or edit; the target is not even
// looked up when it denies the op.
func (a *Agent) beginFileOp(ctx context.Context, event string, ref *api.Target, reason string,
	command ...string) (*fileOp, error) {
	op := &fileOp{id: newSessionID(), event: event, peer: callerOf(ctx), reason: reason, ref: ref,
		command: command, started: time.Now()}

	var denial *Denial
	if err := a.policy.checkFileOp(ref.GetNamespace(), reason); errors.As(err, &denial) {
		rec := op.record(eventDenied)
		rec.Outcome, rec.Error, rec.Rule = "denied", err.Error(), denial.Rule
		a.writeAudit(rec)
		a.metrics.denials.WithLabelValues(rec.Rule).Inc()
		return nil, err
	}
	return op, nil
}

// auditFileStart writes the op's first record once its target is
// resolved; without it the op must not go on.
func (a *Agent) auditFileStart(op *fileOp, target *cri.Target, files []AuditFile) error {
	op.target = target
	rec := op.record(op.event)
	rec.Files = files
	if err := a.audit.write(rec); err != nil {
		return fmt.Errorf("refusing %s on %s without an audit record: %w", op.event, target, err)
	}
	return nil
}

// auditFileDone records how the op ended.
func (a *Agent) auditFileDone(op *fileOp, files []AuditFile, in, out int64, err error) {
	rec := op.record(eventFileDone)
	elapsed := time.Since(op.started).Seconds()
	rec.DurationSeconds = &elapsed
	rec.Files, rec.BytesIn, rec.BytesOut = files, in, out
	rec.Outcome = "done"
	if err != nil {
		rec.Outcome, rec.Error = "failed", err.Error()
	}
	a.writeAudit(rec)
}

func (a *Agent) writeAudit(rec *AuditRecord) {
	if err := a.audit.write(rec); err != nil {
		a.log.Error("write audit record", "event", rec.Event, "error", err)
	}
}

func (op *fileOp) record(event string) *AuditRecord {
	rec := &AuditRecord{
		Time:    time.Now().UTC(),
		Event:   event,
		Session: op.id,
		User:    AuditUser{UID: op.peer.uid, PID: op.peer.pid, Kubernetes: op.peer.kubernetes},
		Reason:  op.reason,
		Target:  AuditTarget{Namespace: op.ref.GetNamespace(), Pod: op.ref.GetPod(), Container: op.ref.GetContainer()},
		Command: op.command,
		Start:   op.started.UTC(),
		Signal:  op.signal,
	}
	if op.target != nil {
		rec.Target.Container = op.target.Container
		rec.Target.ContainerID = op.target.ContainerID
	}
	return rec
}

// fileDigest is the audit entry of content written to path.
func fileDigest(path string, content []byte) AuditFile {
	sum := sha256.Sum256(content)
	return AuditFile{Path: path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}
}

// writtenFiles is what an edit wrote: nothing when it failed.
func writtenFiles(written *fsroot.WriteResult, content []byte) []AuditFile {
	if written == nil {
		return nil
	}
	return []AuditFile{fileDigest(written.Path, content)}
}

// hashingReader hashes what is read through it: the tar stream of a copy
// into a target.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newHashingReader(r io.Reader) *hashingReader {
	return &hashingReader{r: r, h: sha256.New()}
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// file is the audit entry of the whole stream read, under path.
func (h *hashingReader) file(path string) AuditFile {
	return AuditFile{Path: path, SHA256: hex.EncodeToString(h.h.Sum(nil)), Size: h.n, Tar: true}
}
