package cri

import (
	"errors"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func sandbox(id, ns, name string, ready bool, created int64) *runtimeapi.PodSandbox {
	state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	if ready {
		state = runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return &runtimeapi.PodSandbox{
		Id:        id,
		State:     state,
		CreatedAt: created,
		Labels:    map[string]string{LabelPodNamespace: ns, LabelPodName: name},
	}
}

func container(id, name string, attempt uint32, state runtimeapi.ContainerState, created int64) *runtimeapi.Container {
	return &runtimeapi.Container{
		Id:        id,
		State:     state,
		CreatedAt: created,
		Metadata:  &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		Labels:    map[string]string{LabelContainerName: name},
	}
}

const (
	running = runtimeapi.ContainerState_CONTAINER_RUNNING
	exited  = runtimeapi.ContainerState_CONTAINER_EXITED
	created = runtimeapi.ContainerState_CONTAINER_CREATED
)

func TestPickSandbox(t *testing.T) {
	sandboxes := []*runtimeapi.PodSandbox{
		sandbox("old-ready", "web", "api", true, 1),
		sandbox("new-ready", "web", "api", true, 5),
		sandbox("newest-notready", "web", "api", false, 9),
		sandbox("substring", "web", "api-2", true, 10),
		sandbox("other-ns", "web2", "api", true, 11),
		sandbox("only-dead", "web", "dead", false, 3),
	}

	tests := []struct {
		name    string
		ref     Ref
		want    string
		wantErr error
	}{
		{name: "newest ready wins over newer not-ready", ref: Ref{Namespace: "web", Pod: "api"}, want: "new-ready"},
		{name: "exact name, never a prefix", ref: Ref{Namespace: "web", Pod: "ap"}, wantErr: ErrPodNotFound},
		{name: "namespace must match", ref: Ref{Namespace: "web3", Pod: "api"}, wantErr: ErrPodNotFound},
		{name: "running lookups skip stopped sandboxes", ref: Ref{Namespace: "web", Pod: "dead"}, wantErr: ErrPodNotFound},
		{name: "exited lookups accept stopped sandboxes", ref: Ref{Namespace: "web", Pod: "dead", Exited: true}, want: "only-dead"},
		{name: "exited lookups still prefer ready", ref: Ref{Namespace: "web", Pod: "api", Exited: true}, want: "new-ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PickSandbox(sandboxes, tt.ref)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got.Id != tt.want {
				t.Fatalf("picked %s, want %s", got.Id, tt.want)
			}
		})
	}
}

func TestPickContainer(t *testing.T) {
	crashLoop := []*runtimeapi.Container{
		container("app-0", "app", 0, exited, 1),
		container("app-1", "app", 1, exited, 2),
		container("app-2", "app", 2, running, 3),
		container("side-0", "sidecar", 0, running, 1),
	}
	single := []*runtimeapi.Container{container("only", "main", 0, running, 1)}
	notStarted := []*runtimeapi.Container{container("new", "main", 0, created, 1)}

	tests := []struct {
		name       string
		containers []*runtimeapi.Container
		ref        Ref
		want       string
		wantErr    error
	}{
		{name: "newest running attempt", containers: crashLoop, ref: Ref{Container: "app", Attempt: NewestAttempt}, want: "app-2"},
		{name: "only container when none named", containers: single, ref: Ref{Attempt: NewestAttempt}, want: "only"},
		{name: "several containers and none named", containers: crashLoop, ref: Ref{Attempt: NewestAttempt}, wantErr: ErrAmbiguous},
		{name: "unknown name", containers: crashLoop, ref: Ref{Container: "ap", Attempt: NewestAttempt}, wantErr: ErrContainerNotFound},
		{name: "no containers", containers: nil, ref: Ref{Attempt: NewestAttempt}, wantErr: ErrContainerNotFound},
		{name: "newest exited attempt", containers: crashLoop, ref: Ref{Container: "app", Exited: true, Attempt: NewestAttempt}, want: "app-1"},
		{name: "numbered attempt", containers: crashLoop, ref: Ref{Container: "app", Exited: true, Attempt: 0}, want: "app-0"},
		{name: "attempt the runtime lost", containers: crashLoop, ref: Ref{Container: "app", Exited: true, Attempt: 7}, wantErr: errAny},
		{name: "no running attempt reports the newest", containers: notStarted, ref: Ref{Attempt: NewestAttempt}, want: "new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PickContainer(tt.containers, tt.ref)
			if tt.wantErr == errAny {
				if err == nil {
					t.Fatal("want an error, got none")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got.Id != tt.want {
				t.Fatalf("picked %s, want %s", got.Id, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestCheckState(t *testing.T) {
	tests := []struct {
		name    string
		target  Target
		wantErr error
	}{
		{name: "running with pid", target: Target{State: running, Pid: 42}},
		{name: "running without pid", target: Target{State: running}, wantErr: ErrNotRunning},
		{name: "exited without --exited", target: Target{State: exited, ExitCode: 3}, wantErr: ErrExited},
		{name: "created", target: Target{State: created}, wantErr: ErrNotRunning},
		{name: "exited with --exited", target: Target{Ref: Ref{Exited: true}, State: exited}},
		{name: "running with --exited", target: Target{Ref: Ref{Exited: true}, State: running, Pid: 1}, wantErr: ErrNoExitedAttempt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkState(&tt.target)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestExitedMessageNamesTheNextStep(t *testing.T) {
	target := &Target{Ref: Ref{Namespace: "web", Pod: "api", Container: "app"}, State: exited, ExitCode: 3,
		FinishedAt: time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)}
	err := checkState(target)
	want := "container web/api/app is exited (exit code 3, finished 2026-12-04T03:00:00Z); use --exited to inspect its filesystem"
	if err == nil || err.Error() != want {
		t.Fatalf("message = %q\nwant      %q", err, want)
	}
}

func TestParseInfo(t *testing.T) {
	var target Target
	info := map[string]string{"info": `{"pid": 4242, "snapshotter": "overlayfs", "snapshotKey": "abc", "other": [1]}`}
	if err := parseInfo(info, &target); err != nil {
		t.Fatal(err)
	}
	if target.Pid != 4242 || target.Snapshotter != "overlayfs" || target.SnapshotKey != "abc" {
		t.Fatalf("parsed %+v", target)
	}

	if err := parseInfo(map[string]string{"info": "{"}, &target); err == nil {
		t.Fatal("want an error for a broken info blob")
	}
}

func TestSocketPath(t *testing.T) {
	tests := []struct {
		endpoint, want string
		wantErr        bool
	}{
		{endpoint: "unix:///run/containerd/containerd.sock", want: "/run/containerd/containerd.sock"},
		{endpoint: "/run/crio/crio.sock", want: "/run/crio/crio.sock"},
		{endpoint: "tcp://127.0.0.1:1234", wantErr: true},
		{endpoint: "unix://", wantErr: true},
	}
	for _, tt := range tests {
		got, err := SocketPath(tt.endpoint)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("SocketPath(%q) = %q, %v", tt.endpoint, got, err)
		}
	}
}

func TestPickContainerSkipsToolContainers(t *testing.T) {
	containers := []*runtimeapi.Container{
		{Id: "app-1", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
			Labels: map[string]string{LabelContainerName: "app"}},
		{Id: "tool-1", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
			Metadata: &runtimeapi.ContainerMetadata{Name: "nodedebug-abc"},
			Labels:   map[string]string{LabelToolSession: "nodedebug-abc"}},
	}

	got, err := PickContainer(containers, Ref{Namespace: "ns", Pod: "web"})
	if err != nil {
		t.Fatalf("PickContainer: %v", err)
	}
	if got.Id != "app-1" {
		t.Fatalf("PickContainer = %s, want app-1", got.Id)
	}
}
