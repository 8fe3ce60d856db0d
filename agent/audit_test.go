package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAuditLogAppendsOneLinePerRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "audit.log")
	var stdout bytes.Buffer
	log, err := openAuditLog(path, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()

	start := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	for _, event := range []string{eventStart, eventEnd} {
		rec := &AuditRecord{Time: start, Event: event, Session: "s1", Reason: "line\nbreak", Start: start}
		if err := log.write(rec); err != nil {
			t.Fatal(err)
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 2 || !bytes.Equal(data, stdout.Bytes()) {
		t.Fatalf("want two lines in the file and the same on stdout, got %q and %q", data, stdout.Bytes())
	}
	for _, line := range lines {
		var rec AuditRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Reason != "line\nbreak" {
			t.Fatalf("line %q: %v", line, err)
		}
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("audit log mode %v, want 0600", info.Mode().Perm())
	}
}

func TestAuditWriteFailureIsAnError(t *testing.T) {
	log, err := openAuditLog(filepath.Join(t.TempDir(), "audit.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	log.Close()

	if err := log.write(&AuditRecord{Session: "s2"}); err == nil || !strings.Contains(err.Error(), "session s2") {
		t.Fatalf("write to a closed audit log: got %v, want an error naming the session", err)
	}
}

// auditSessions reads the sessions of the records in the audit log at
// path, failing on a line that is not one record.
func auditSessions(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var sessions []string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var rec AuditRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		sessions = append(sessions, rec.Session)
	}
	return sessions
}

func TestAuditLogFollowsRotation(t *testing.T) {
	tests := []struct {
		name   string
		rotate func(path, old string) error
		old    []string
	}{
		{name: "moved away and deleted", rotate: func(path, old string) error {
			if err := os.Rename(path, old); err != nil {
				return err
			}
			return os.Remove(old)
		}},
		{name: "moved away and kept", old: []string{"s1"}, rotate: os.Rename},
		{name: "moved away and replaced by an empty file", old: []string{"s1"}, rotate: func(path, old string) error {
			if err := os.Rename(path, old); err != nil {
				return err
			}
			return os.WriteFile(path, nil, 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path, old := filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.log.1")
			log, err := openAuditLog(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()

			if err := log.write(&AuditRecord{Session: "s1"}); err != nil {
				t.Fatal(err)
			}
			if err := tt.rotate(path, old); err != nil {
				t.Fatal(err)
			}
			if err := log.write(&AuditRecord{Session: "s2"}); err != nil {
				t.Fatal(err)
			}

			if got := auditSessions(t, path); !slices.Equal(got, []string{"s2"}) {
				t.Fatalf("after rotation the log holds %q, want s2 alone", got)
			}
			if tt.old != nil {
				if got := auditSessions(t, old); !slices.Equal(got, tt.old) {
					t.Fatalf("the rotated log holds %q, want %q", got, tt.old)
				}
			}
			if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
				t.Fatalf("reopened audit log: %v, %v; want mode 0600", info, err)
			}
		})
	}
}

// fullDisk is an audit file whose writes, once full is set, stop half-way:
// with ENOSPC, as on a full disk, or short without an error.
type fullDisk struct {
	*os.File
	full    bool
	errFull error
}

func (f *fullDisk) Write(p []byte) (int, error) {
	if !f.full {
		return f.File.Write(p)
	}
	n, err := f.File.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	return n, f.errFull
}

func TestAuditFullDiskLeavesNoHalfLine(t *testing.T) {
	for _, errFull := range []error{syscall.ENOSPC, nil} {
		t.Run(fmt.Sprint("write error ", errFull), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			var stdout bytes.Buffer
			log, err := openAuditLog(path, &stdout)
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			disk := &fullDisk{File: log.file.(*os.File), errFull: errFull}
			log.file = disk

			if err := log.write(&AuditRecord{Session: "s1"}); err != nil {
				t.Fatal(err)
			}
			disk.full = true
			err = log.write(&AuditRecord{Session: "s2"})
			if err == nil || !strings.Contains(err.Error(), "session s2") ||
				(errFull != nil && !errors.Is(err, errFull)) {
				t.Fatalf("a write that stopped half-way: got %v, want an error naming s2", err)
			}
			disk.full = false
			if err := log.write(&AuditRecord{Session: "s3"}); err != nil {
				t.Fatal(err)
			}

			if got := auditSessions(t, path); !slices.Equal(got, []string{"s1", "s3"}) {
				t.Fatalf("the log holds %q, want s1 and s3", got)
			}
			if strings.Contains(stdout.String(), "s2") {
				t.Fatalf("the failed record went to stdout: %s", stdout.String())
			}
		})
	}
}

func TestMetricsAddress(t *testing.T) {
	tests := map[string]string{
		":9090":          "127.0.0.1:9090",
		"127.0.0.1:9090": "127.0.0.1:9090",
		"[::1]:9090":     "[::1]:9090",
		"0.0.0.0:9090":   "0.0.0.0:9090",
	}
	for in, want := range tests {
		got, err := MetricsAddress(in)
		if err != nil || got != want {
			t.Errorf("MetricsAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := MetricsAddress("9090"); err == nil {
		t.Error("MetricsAddress(\"9090\") accepted a port without a colon")
	}
}
