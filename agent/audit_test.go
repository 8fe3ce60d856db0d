package agent

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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
