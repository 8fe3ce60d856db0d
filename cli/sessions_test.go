package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodedebug/nodedebug/api"
)

func TestPrintSessions(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	sessions := []*api.SessionInfo{
		{Id: "a1b2c3d4e5f6", Uid: 0, Pid: 4242, Profile: "general", StartedUnix: now.Unix() - 95, Attached: true,
			Target: &api.Target{Namespace: "shop", Pod: "web-7d9f", Container: "app"}},
		{Id: "0f0f0f0f0f0f", Uid: 1000, Pid: 7, Profile: "restricted", StartedUnix: now.Unix() - 3,
			Target: &api.Target{Namespace: "shop", Pod: "db-0"}, Command: []string{"ps", "aux"}},
	}

	var out bytes.Buffer
	if err := printSessions(&out, sessions, now); err != nil {
		t.Fatal(err)
	}

	want := "" +
		"SESSION       USER              TARGET             AGE    PROFILE     CLIENT    COMMAND\n" +
		"a1b2c3d4e5f6  uid 0 (pid 4242)  shop/web-7d9f/app  1m35s  general     attached  (image default)\n" +
		"0f0f0f0f0f0f  uid 1000 (pid 7)  shop/db-0          3s     restricted  detached  ps aux\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Fatalf("sessions table (-want +got):\n%s", diff)
	}
}
