package agent

import (
	"io"
	"strings"
	"testing"
)

func TestHashingReaderHashesWhatPassed(t *testing.T) {
	r := newHashingReader(strings.NewReader("hello\n"))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}

	want := AuditFile{Path: "/tmp/x", Size: 6, Tar: true,
		SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}
	if got := r.file("/tmp/x"); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := fileDigest("/a", []byte("hello\n")); got.SHA256 != want.SHA256 || got.Tar || got.Size != 6 {
		t.Fatalf("fileDigest = %+v", got)
	}
}
