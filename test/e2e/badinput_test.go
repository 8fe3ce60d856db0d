package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodedebug/nodedebug/test/harness"
)

// exitFailure is nodedebug's own failure status.
const exitFailure = 125

func TestAttachBadInputChangesNothing(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{
		s.targetContainer("app"), s.targetContainer("side")}})
	crashed := s.crashedPod(t)
	name := pod.Spec.Name

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "unknown pod", args: []string{"no-such-pod", "--", "true"},
			want: []string{"pod e2e/no-such-pod not found on this node", "-n"}},
		{name: "unknown container", args: []string{name + "/nope", "--", "true"},
			want: []string{`pod e2e/` + name + ` has no such container "nope"`, "its containers: app, side"}},
		{name: "ambiguous container", args: []string{name, "--", "true"},
			want: []string{"has several containers (app, side)", name + "/CONTAINER or with -c"}},
		{name: "exited target", args: []string{crashed.Spec.Name + "/app", "--", "true"},
			want: []string{"container e2e/" + crashed.Spec.Name + "/app is exited (exit code 3, finished", "use --exited"}},
		{name: "image not present", args: []string{"--image", "nodedebug.local/absent:1", name + "/app", "--", "true"},
			want: []string{"nodedebug.local/absent:1 is not in containerd namespace nodedebug", "images import"}},
		{name: "unknown profile", args: []string{"--profile", "godmode", name + "/app", "--", "true"},
			want: []string{`unknown profile "godmode"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.podState(t, pod)

			r := s.attach(t, nil, tt.args...)
			requireCode(t, r, exitFailure)
			requireOneLineError(t, r, tt.want...)

			if after := s.podState(t, pod); after != before {
				t.Fatalf("the pod changed: before %s, after %s", before, after)
			}
			s.requireNoToolContainers(t, 0)
		})
	}
}

func TestAttachAgentNotRunning(t *testing.T) {
	s := env(t)
	socket := filepath.Join(t.TempDir(), "agent.sock")

	r := s.run(t, nil, "attach", "--agent", "unix://"+socket, "web", "--", "true")
	requireCode(t, r, exitFailure)
	requireOneLineError(t, r, "agent socket "+socket+" not found", "is the nodedebug agent running")
}

func TestAttachUsageErrors(t *testing.T) {
	s := env(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no pod", args: nil, want: "needs a pod"},
		{name: "command without --", args: []string{"web", "ps"}, want: "put the command after --"},
		{name: "attempt without --exited", args: []string{"--attempt", "1", "web"}, want: "add --exited"},
		{name: "unknown flag", args: []string{"--frobnicate", "web"}, want: "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.attach(t, nil, tt.args...)
			requireCode(t, r, 2)
			requireOneLineError(t, r, tt.want)
		})
	}
}

func TestAgentRefusesBadRuntimeEndpoints(t *testing.T) {
	s := env(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")

	tests := []struct {
		name     string
		endpoint string
		listen   string
		want     string
	}{
		{name: "missing CRI socket", endpoint: "unix://" + missing, listen: filepath.Join(dir, "a.sock"),
			want: "CRI socket not found at " + missing},
		// The running agent's socket speaks gRPC, but not CRI.
		{name: "not a CRI endpoint", endpoint: s.agentEndpoint(), listen: filepath.Join(dir, "b.sock"),
			want: "socket " + s.agentSocket() + " is not a CRI endpoint"},
		{name: "socket owned by another agent", endpoint: "unix://" + s.containerd.Socket, listen: s.agentSocket(),
			want: "socket is owned by another agent: " + s.agentSocket()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.run(t, nil, "agent", "--runtime-endpoint", tt.endpoint, "--listen", tt.listen,
				"--state-dir", filepath.Join(dir, "state"), "--audit-log", filepath.Join(dir, "audit.log"))
			requireCode(t, r, exitFailure)
			if !strings.Contains(string(r.stderr), tt.want) {
				t.Fatalf("want %q in the agent's error, got %s", tt.want, r)
			}
		})
	}

	// The refused agent must not have taken the running agent's socket.
	if conn, err := dialUnix(s.agentSocket()); err != nil {
		t.Fatalf("the running agent's socket is gone: %v", err)
	} else {
		conn.Close()
	}
}

// crashedPod runs a pod whose only container exits 3, and waits for that.
func (s *suite) crashedPod(t *testing.T) *harness.Pod {
	t.Helper()
	app := s.targetContainer("app")
	app.Args = []string{"-crash"}
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{app}})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.containerd.WaitContainerExited(ctx, pod.ContainerIDs["app"]); err != nil {
		t.Fatal(err)
	}
	return pod
}

// podState summarises what must not change: every container's id, state,
// attempt and start time.
func (s *suite) podState(t *testing.T, pod *harness.Pod) string {
	t.Helper()
	containers, err := s.containerd.ListContainers(context.Background(), pod)
	if err != nil {
		t.Fatal(err)
	}

	var parts []string
	for _, c := range containers {
		status, err := s.containerd.ContainerStatus(context.Background(), c.Id)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, c.Id[:12]+":"+status.GetState().String()+":"+
			status.GetMetadata().String()+":"+time.Unix(0, status.GetStartedAt()).String())
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// requireOneLineError checks that stderr is one "nodedebug: ..." line that
// holds every wanted phrase.
func requireOneLineError(t *testing.T, r result, want ...string) {
	t.Helper()
	line := strings.TrimSuffix(string(r.stderr), "\n")
	if !strings.HasPrefix(line, "nodedebug: ") || strings.Contains(line, "\n") {
		t.Fatalf("want one 'nodedebug: ...' line on stderr, got %s", r)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Fatalf("error %q does not say %q", line, w)
		}
	}
}

func TestPingReportsRuntime(t *testing.T) {
	s := env(t)

	r := s.run(t, nil, "ping", "--agent", s.agentEndpoint())
	requireCode(t, r, 0)
	if !strings.Contains(string(r.stdout), "containerd") || !strings.Contains(string(r.stdout), s.containerd.Socket) {
		t.Fatalf("ping does not name the runtime and its socket: %s", r)
	}

	r = s.run(t, nil, "ping", "--agent", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
	requireCode(t, r, exitFailure)
}
