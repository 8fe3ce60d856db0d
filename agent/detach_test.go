package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/nodedebug/nodedebug/api"
)

func stdout(s string) *api.AttachResponse {
	return &api.AttachResponse{Msg: &api.AttachResponse_Stdout{Stdout: []byte(s)}}
}

func TestBacklogKeepsTheNewestOutput(t *testing.T) {
	b := newBacklog(10)
	for _, s := range []string{"aaaa", "bbbb", "cccc", "dd"} {
		b.add(stdout(s))
	}

	// 14 bytes came, 10 fit: the oldest message goes.
	want := []*api.AttachResponse{stdout("bbbb"), stdout("cccc"), stdout("dd")}
	if diff := cmp.Diff(want, b.drain(), protocmp.Transform()); diff != "" {
		t.Fatalf("backlog (-want +got):\n%s", diff)
	}
	if got := b.drain(); len(got) != 0 {
		t.Fatalf("drain twice returned %d messages", len(got))
	}

	// Of one message larger than the bound, the newest bytes stay.
	b.add(stdout("0123456789ab"))
	want = []*api.AttachResponse{stdout("23456789ab")}
	if diff := cmp.Diff(want, b.drain(), protocmp.Transform()); diff != "" {
		t.Fatalf("backlog of an oversized message (-want +got):\n%s", diff)
	}
}

func TestBacklogKeepsOutputWhoseBufferIsReused(t *testing.T) {
	b := newBacklog(10)
	buf := []byte("first")
	b.add(&api.AttachResponse{Msg: &api.AttachResponse_Stdout{Stdout: buf}})
	copy(buf, "XXXXX")

	want := []*api.AttachResponse{stdout("first")}
	if diff := cmp.Diff(want, b.drain(), protocmp.Transform()); diff != "" {
		t.Fatalf("backlog after the writer reused its buffer (-want +got):\n%s", diff)
	}
}
