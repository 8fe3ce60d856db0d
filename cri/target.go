package cri

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The labels kubelet sets on every pod sandbox and container it creates.
const (
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// NewestAttempt asks for the newest attempt of a container.
const NewestAttempt = -1

var (
	ErrPodNotFound       = errors.New("not found on this node")
	ErrContainerNotFound = errors.New("no such container")
	ErrAmbiguous         = errors.New("several containers")
	ErrExited            = errors.New("is exited")
	ErrNotRunning        = errors.New("is not running")
	ErrNoExitedAttempt   = errors.New("has no exited attempt")
)

// Ref names a container as a Kubernetes user knows it.
type Ref struct {
	Namespace string
	Pod       string
	// Container may be empty when the pod has exactly one container.
	Container string
	// Exited asks for an exited container rather than a running one.
	Exited bool
	// Attempt picks a restart attempt; NewestAttempt for the newest.
	Attempt int
}

// PodString is "namespace/pod".
func (r Ref) PodString() string {
	return r.Namespace + "/" + r.Pod
}

// Target is a container the runtime knows, resolved from a Ref.
type Target struct {
	Ref

	SandboxID   string
	ContainerID string
	Attempt     uint32
	Image       string
	State       runtimeapi.ContainerState

	// Pid is the host pid of the container's main process while it runs.
	Pid int

	// Snapshotter and SnapshotKey locate the container's root filesystem
	// in containerd; empty for other runtimes.
	Snapshotter string
	SnapshotKey string

	Mounts     []*runtimeapi.Mount
	ExitCode   int32
	FinishedAt time.Time
}

// String is "namespace/pod/container".
func (t *Target) String() string {
	return t.PodString() + "/" + t.Container
}

// Resolve finds the sandbox and container that ref names.
func (c *Client) Resolve(ctx context.Context, ref Ref) (*Target, error) {
	sandboxes, err := c.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{
			LabelPodNamespace: ref.Namespace,
			LabelPodName:      ref.Pod,
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes of %s: %w", ref.PodString(), err)
	}

	sandbox, err := PickSandbox(sandboxes.GetItems(), ref)
	if err != nil {
		return nil, err
	}

	containers, err := c.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandbox.Id},
	})
	if err != nil {
		return nil, fmt.Errorf("list containers of pod %s: %w", ref.PodString(), err)
	}

	container, err := PickContainer(containers.GetContainers(), ref)
	if err != nil {
		return nil, err
	}
	return c.describe(ctx, ref, sandbox, container)
}

// describe reads the container's status and checks it is in the state the
// caller asked for.
func (c *Client) describe(ctx context.Context, ref Ref, sandbox *runtimeapi.PodSandbox,
	container *runtimeapi.Container) (*Target, error) {
	resp, err := c.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{
		ContainerId: container.Id,
		Verbose:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("read status of container %s: %w", container.Id, err)
	}

	ref.Container = ContainerName(container)
	target := newTarget(ref, sandbox, resp.GetStatus())
	if err := parseInfo(resp.GetInfo(), target); err != nil {
		return nil, fmt.Errorf("read runtime info of container %s: %w", target, err)
	}

	if err := checkState(target); err != nil {
		return nil, err
	}
	return target, nil
}

func newTarget(ref Ref, sandbox *runtimeapi.PodSandbox, st *runtimeapi.ContainerStatus) *Target {
	return &Target{
		Ref:         ref,
		SandboxID:   sandbox.Id,
		ContainerID: st.GetId(),
		Attempt:     st.GetMetadata().GetAttempt(),
		Image:       st.GetImage().GetImage(),
		State:       st.GetState(),
		Mounts:      st.GetMounts(),
		ExitCode:    st.GetExitCode(),
		FinishedAt:  time.Unix(0, st.GetFinishedAt()),
	}
}

// runtimeInfo holds the fields of the verbose "info" blob that containerd
// and CRI-O both fill in.
type runtimeInfo struct {
	Pid         int    `json:"pid"`
	Snapshotter string `json:"snapshotter"`
	SnapshotKey string `json:"snapshotKey"`
}

func parseInfo(info map[string]string, target *Target) error {
	blob, ok := info["info"]
	if !ok {
		return nil
	}

	var parsed runtimeInfo
	if err := json.Unmarshal([]byte(blob), &parsed); err != nil {
		return err
	}

	target.Pid = parsed.Pid
	target.Snapshotter = parsed.Snapshotter
	target.SnapshotKey = parsed.SnapshotKey
	return nil
}

// checkState fails with a message that names the next step when the
// container is not in the state the caller asked for.
func checkState(t *Target) error {
	switch {
	case t.Exited && t.State == runtimeapi.ContainerState_CONTAINER_EXITED:
		return nil
	case t.Exited:
		return fmt.Errorf("container %s %w: it is %s; attach to it without --exited",
			t, ErrNoExitedAttempt, stateName(t.State))
	case t.State == runtimeapi.ContainerState_CONTAINER_EXITED:
		return fmt.Errorf("container %s %w (exit code %d, finished %s); use --exited to inspect its filesystem",
			t, ErrExited, t.ExitCode, t.FinishedAt.UTC().Format(time.RFC3339))
	case t.State != runtimeapi.ContainerState_CONTAINER_RUNNING:
		return fmt.Errorf("container %s %w: it is %s", t, ErrNotRunning, stateName(t.State))
	case t.Pid <= 0:
		return fmt.Errorf("container %s %w: the runtime reports no pid for it", t, ErrNotRunning)
	}
	return nil
}

func stateName(s runtimeapi.ContainerState) string {
	name, _ := strings.CutPrefix(s.String(), "CONTAINER_")
	return strings.ToLower(name)
}

// PickSandbox chooses the sandbox of the named pod: exact label matches only,
// ready ones first, the newest among equals. Exited lookups also accept a
// sandbox that is no longer ready, since a crashed pod may have been stopped.
func PickSandbox(sandboxes []*runtimeapi.PodSandbox, ref Ref) (*runtimeapi.PodSandbox, error) {
	var candidates []*runtimeapi.PodSandbox
	for _, s := range sandboxes {
		labels := s.GetLabels()
		if labels[LabelPodNamespace] != ref.Namespace || labels[LabelPodName] != ref.Pod {
			continue
		}
		if s.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY || ref.Exited {
			candidates = append(candidates, s)
		}
	}

	if len(candidates) == 0 {
		return nil, fmt.Errorf("pod %s %w (check the namespace with -n, and that the pod runs on this node)",
			ref.PodString(), ErrPodNotFound)
	}

	return slices.MaxFunc(candidates, func(a, b *runtimeapi.PodSandbox) int {
		return cmp.Or(
			cmp.Compare(readyRank(a), readyRank(b)),
			cmp.Compare(a.GetCreatedAt(), b.GetCreatedAt()))
	}), nil
}

func readyRank(s *runtimeapi.PodSandbox) int {
	if s.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
		return 1
	}
	return 0
}

// ContainerName is the name kubelet gave the container.
func ContainerName(c *runtimeapi.Container) string {
	if name := c.GetLabels()[LabelContainerName]; name != "" {
		return name
	}
	return c.GetMetadata().GetName()
}

// PickContainer chooses the container that ref names among one sandbox's
// containers. Running lookups take the newest running attempt; exited ones
// take the newest exited attempt, or the one ref.Attempt names.
func PickContainer(containers []*runtimeapi.Container, ref Ref) (*runtimeapi.Container, error) {
	containers = withoutToolContainers(containers)
	name, err := containerNameFor(containers, ref)
	if err != nil {
		return nil, err
	}

	var attempts []*runtimeapi.Container
	for _, c := range containers {
		if ContainerName(c) == name {
			attempts = append(attempts, c)
		}
	}
	ref.Container = name
	return pickAttempt(attempts, ref)
}

// containerNameFor returns the container name ref asks for, or the only
// container's name when ref names none.
func containerNameFor(containers []*runtimeapi.Container, ref Ref) (string, error) {
	names := containerNames(containers)
	if ref.Container != "" {
		if !slices.Contains(names, ref.Container) {
			return "", fmt.Errorf("pod %s has %w %q; its containers: %s",
				ref.PodString(), ErrContainerNotFound, ref.Container, listOrNone(names))
		}
		return ref.Container, nil
	}

	switch len(names) {
	case 0:
		return "", fmt.Errorf("pod %s has %w: it has no containers yet", ref.PodString(), ErrContainerNotFound)
	case 1:
		return names[0], nil
	}
	return "", fmt.Errorf("pod %s has %w (%s); name one as %s/CONTAINER or with -c",
		ref.PodString(), ErrAmbiguous, strings.Join(names, ", "), ref.Pod)
}

func containerNames(containers []*runtimeapi.Container) []string {
	var names []string
	for _, c := range containers {
		names = append(names, ContainerName(c))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func pickAttempt(attempts []*runtimeapi.Container, ref Ref) (*runtimeapi.Container, error) {
	if ref.Exited && ref.Attempt != NewestAttempt {
		return pickNumberedAttempt(attempts, ref)
	}

	wanted := runtimeapi.ContainerState_CONTAINER_RUNNING
	if ref.Exited {
		wanted = runtimeapi.ContainerState_CONTAINER_EXITED
	}

	var inState []*runtimeapi.Container
	for _, c := range attempts {
		if c.GetState() == wanted {
			inState = append(inState, c)
		}
	}

	// With no attempt in the wanted state, report on the newest attempt, so
	// the caller learns what state it is in.
	if len(inState) == 0 {
		inState = attempts
	}
	return slices.MaxFunc(inState, newerAttempt), nil
}

func pickNumberedAttempt(attempts []*runtimeapi.Container, ref Ref) (*runtimeapi.Container, error) {
	var numbers []string
	for _, c := range attempts {
		if int(c.GetMetadata().GetAttempt()) == ref.Attempt {
			return c, nil
		}
		numbers = append(numbers, fmt.Sprint(c.GetMetadata().GetAttempt()))
	}
	return nil, fmt.Errorf("container %s/%s: the runtime no longer has attempt %d; it has attempts %s",
		ref.PodString(), ref.Container, ref.Attempt, strings.Join(numbers, ", "))
}

func newerAttempt(a, b *runtimeapi.Container) int {
	return cmp.Or(
		cmp.Compare(a.GetMetadata().GetAttempt(), b.GetMetadata().GetAttempt()),
		cmp.Compare(a.GetCreatedAt(), b.GetCreatedAt()))
}
