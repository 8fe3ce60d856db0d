package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Audit events.
const (
	eventStart  = "session.start"
	eventEnd    = "session.end"
	eventDenied = "session.denied"
	eventAttach = "session.attach"
)

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Session string    `json:"session"`
	User    AuditUser `json:"user"`
	Reason  string    `json:"reason"`

	Target      AuditTarget `json:"target"`
	Image       string      `json:"image,omitempty"`
	ImageDigest string      `json:"imageDigest,omitempty"`
	Profile     string      `json:"profile"`
	// Custom is what `attach --custom` changed of the profile.
	Custom  *AuditCustom `json:"custom,omitempty"`
	Command []string     `json:"command"`

	Start           time.Time `json:"start"`
	DurationSeconds *float64  `json:"durationSeconds,omitempty"`
	Outcome         string    `json:"outcome,omitempty"`
	ExitCode        *int32    `json:"exitCode,omitempty"`
	Error           string    `json:"error,omitempty"`
	// Rule is the policy field that denied a session.
	Rule     string      `json:"rule,omitempty"`
	BytesIn  int64       `json:"bytesIn"`
	BytesOut int64       `json:"bytesOut"`
	Files    []AuditFile `json:"files,omitempty"`
	// Signal is what `edit --signal` sent after writing.
	Signal *AuditSignal `json:"signal,omitempty"`
	// KilledBy is who ended the session with `nodedebug kill`.
	KilledBy *AuditUser `json:"killedBy,omitempty"`
}

// AuditCustom is what a custom process spec granted over its profile:
// the user the tool runs as, and the capabilities in any of its sets that
// the profile has not, or has and the custom spec took away.
type AuditCustom struct {
	User                AuditIDs `json:"user"`
	CapabilitiesAdded   []string `json:"capabilitiesAdded,omitempty"`
	CapabilitiesDropped []string `json:"capabilitiesDropped,omitempty"`
}

// AuditIDs is a uid and gid.
type AuditIDs struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// AuditSignal is a signal an edit sends to the target's main process, by
// its host pid. Sent is set once the agent tried.
type AuditSignal struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Sent  *bool  `json:"sent,omitempty"`
	Error string `json:"error,omitempty"`
}

// AuditUser is who opened the session. On the node that is the uid and
// pid on the agent socket; a cluster gateway adds the Kubernetes user.
type AuditUser struct {
	UID        uint32 `json:"uid"`
	PID        int32  `json:"pid"`
	Kubernetes string `json:"kubernetes,omitempty"`
}

// AuditTarget is the debugged container.
type AuditTarget struct {
	Namespace   string `json:"namespace"`
	Pod         string `json:"pod"`
	Container   string `json:"container"`
	ContainerID string `json:"containerId,omitempty"`
}

// AuditFile is what cp or edit wrote into the target. For cp, Tar is set:
// the sha256 and size are of the tar stream unpacked at Path.
type AuditFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Tar    bool   `json:"tar,omitempty"`
}

// auditLog appends one JSON line per event and syncs it to disk before the
// event may go on: a session whose start is not on disk does not start.
// It follows rotation: when the path no longer names the open file, the
// next record goes to a new file at the path.
type auditLog struct {
	mu     sync.Mutex
	path   string
	file   auditFile
	stdout io.Writer
}

// auditFile is the open audit log as auditLog uses it: an *os.File, or in
// tests one that fails the way a full disk does.
type auditFile interface {
	io.Writer
	Sync() error
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
	Close() error
}

// openAuditLog opens path for appending, creating it and its folder.
// stdout, if not nil, gets a copy of every line.
func openAuditLog(path string, stdout io.Writer) (*auditLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create folder of audit log %s: %w", path, err)
	}
	file, err := openAuditFile(path)
	if err != nil {
		return nil, err
	}
	return &auditLog{path: path, file: file, stdout: stdout}, nil
}

func openAuditFile(path string) (*os.File, error) {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	return file, nil
}

func (l *auditLog) write(rec *AuditRecord) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode audit record of session %s: %w", rec.Session, err)
	}
	line = append(line, '\n')

	l.mu.Lock()
	defer l.mu.Unlock()

	size, err := l.followRotation()
	if err != nil {
		return fmt.Errorf("write audit record of session %s: %w", rec.Session, err)
	}
	if err := l.append(line, size); err != nil {
		return fmt.Errorf("write audit record of session %s to %s: %w", rec.Session, l.path, err)
	}
	if l.stdout != nil {
		_, _ = l.stdout.Write(line)
	}
	return nil
}

// append writes line in one write and syncs it. On a short write or a
// failed sync it cuts the file back to size, its length before: the agent
// is its only writer, and a half line would corrupt the next record.
func (l *auditLog) append(line []byte, size int64) error {
	n, err := l.file.Write(line)
	if err == nil && n < len(line) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = l.file.Sync()
	}
	if err == nil {
		return nil
	}

	if n == 0 {
		return err
	}
	if terr := l.file.Truncate(size); terr != nil {
		err = errors.Join(err, fmt.Errorf("cut off the half-written record: %w", terr))
	}
	return err
}

// followRotation reopens the path when it no longer names the open file:
// it was moved away, deleted or replaced. A stat and an fstat per record
// are cheap next to the fsync. It returns the open file's size.
func (l *auditLog) followRotation() (int64, error) {
	open, err := l.file.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat open audit log %s: %w", l.path, err)
	}
	named, err := os.Stat(l.path)
	if err == nil && os.SameFile(open, named) {
		return open.Size(), nil
	}

	file, err := openAuditFile(l.path)
	if err != nil {
		return 0, err
	}
	_ = l.file.Close()
	l.file = file

	reopened, err := file.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat audit log %s: %w", l.path, err)
	}
	return reopened.Size(), nil
}

func (l *auditLog) Close() error {
	return l.file.Close()
}

// record is the audit record of s as it stands.
func (s *session) record(event string) *AuditRecord {
	t := s.start.Target
	rec := &AuditRecord{
		Time:        time.Now().UTC(),
		Event:       event,
		Session:     s.id,
		User:        AuditUser{UID: s.peer.uid, PID: s.peer.pid, Kubernetes: s.peer.kubernetes},
		Reason:      s.start.Reason,
		Target:      AuditTarget{Namespace: t.Namespace, Pod: t.Pod, Container: t.Container},
		Image:       s.image,
		ImageDigest: s.imageDigest,
		Profile:     s.profileName(),
		Custom:      s.custom,
		Command:     s.start.Command,
		Start:       s.started.UTC(),
		BytesIn:     s.bytesIn.Load(),
		BytesOut:    s.bytesOut.Load(),
	}
	if s.target != nil {
		rec.Target.Container = s.target.Container
		rec.Target.ContainerID = s.target.ContainerID
	}
	return rec
}

// auditStart writes the start record; without it the session must not
// run.
func (s *session) auditStart() error {
	if err := s.agent.audit.write(s.record(eventStart)); err != nil {
		return fmt.Errorf("refusing to start session %s without an audit record: %w", s.id, err)
	}
	s.audited = true
	return nil
}

// auditEnd writes how a session ended: a denial, or the end of a session
// whose start was recorded. Other failures before the start are only
// logged.
func (s *session) auditEnd(outcome string, err error) {
	var denial *Denial
	event := eventEnd
	switch {
	case errors.As(err, &denial):
		event = eventDenied
	case errors.Is(err, ErrBusy):
		event = eventDenied
	case !s.audited:
		return
	}

	rec := s.record(event)
	elapsed := time.Since(s.started).Seconds()
	rec.DurationSeconds = &elapsed
	rec.Outcome = outcome
	rec.ExitCode = s.exitCode
	if denial != nil {
		rec.Rule = denial.Rule
	} else if errors.Is(err, ErrBusy) {
		rec.Rule = "maxConcurrentSessions"
	}
	if err != nil {
		rec.Error = err.Error()
	}
	var ended *endedError
	if errors.As(err, &ended) && ended.by != nil {
		rec.KilledBy = &AuditUser{UID: ended.by.uid, PID: ended.by.pid, Kubernetes: ended.by.kubernetes}
	}

	if werr := s.agent.audit.write(rec); werr != nil {
		s.log.Error("write audit record", "event", event, "error", werr)
	}
}

// auditAttach records a client reattaching to a detached session; the
// user is the new client.
func (s *session) auditAttach(client peerInfo) {
	rec := s.record(eventAttach)
	rec.User = AuditUser{UID: client.uid, PID: client.pid}
	if err := s.agent.audit.write(rec); err != nil {
		s.log.Error("write audit record", "event", eventAttach, "error", err)
	}
}
