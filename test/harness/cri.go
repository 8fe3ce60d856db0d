package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod is a running pod sandbox and its containers.
type Pod struct {
	SandboxID string
	// ContainerIDs maps container name to the ID of its latest attempt.
	ContainerIDs map[string]string
	Spec         PodSpec

	config   *runtimeapi.PodSandboxConfig
	attempts map[string]uint32
}

// RunPod creates the sandbox and starts every container in order, like
// kubelet. On error the pod created so far is returned so the caller can
// remove it; Stop removes it anyway.
func (c *Containerd) RunPod(ctx context.Context, spec PodSpec) (*Pod, error) {
	if spec.UID == "" {
		uid, err := newUID()
		if err != nil {
			return nil, err
		}
		spec.UID = uid
	}

	pod := &Pod{
		Spec:         spec,
		ContainerIDs: map[string]string{},
		attempts:     map[string]uint32{},
		config:       sandboxConfig(spec, filepath.Join(c.Dir, "pods"), c.CgroupParent, 0),
	}
	resp, err := c.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod.config})
	if err != nil {
		return nil, fmt.Errorf("run pod sandbox %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	pod.SandboxID = resp.GetPodSandboxId()
	c.rememberNetns(ctx, pod.SandboxID)

	for _, ctr := range spec.Containers {
		if _, err := c.startContainer(ctx, pod, ctr, 0); err != nil {
			return pod, err
		}
	}
	return pod, nil
}

// AddContainer creates and starts one more container in a running pod.
func (c *Containerd) AddContainer(ctx context.Context, pod *Pod, spec ContainerSpec) (string, error) {
	pod.Spec.Containers = append(pod.Spec.Containers, spec)
	return c.startContainer(ctx, pod, spec, 0)
}

// RestartContainer starts the next attempt of a named container, as
// kubelet does after a crash. The old container stays, like kubelet keeps
// it for `kubectl logs --previous`.
func (c *Containerd) RestartContainer(ctx context.Context, pod *Pod, name string) (string, error) {
	for _, spec := range pod.Spec.Containers {
		if spec.Name == name {
			return c.startContainer(ctx, pod, spec, pod.attempts[name]+1)
		}
	}
	return "", fmt.Errorf("restart container %s in pod %s: no such container", name, pod.Spec.Name)
}

func (c *Containerd) startContainer(ctx context.Context, pod *Pod, spec ContainerSpec, attempt uint32) (string, error) {
	resp, err := c.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId:  pod.SandboxID,
		Config:        containerConfig(pod.Spec, spec, attempt),
		SandboxConfig: pod.config,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s in pod %s: %w", spec.Name, pod.Spec.Name, err)
	}
	id := resp.GetContainerId()
	pod.ContainerIDs[spec.Name] = id
	pod.attempts[spec.Name] = attempt

	if _, err := c.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return id, fmt.Errorf("start container %s (%s): %w", spec.Name, id, err)
	}
	return id, nil
}

// rememberNetns records the pod's network namespace path so Stop can remove
// it if CRI does not; a failure here only weakens cleanup.
func (c *Containerd) rememberNetns(ctx context.Context, sandboxID string) {
	resp, err := c.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{
		PodSandboxId: sandboxID,
		Verbose:      true,
	})
	if err != nil {
		c.log.Warn("read sandbox status", "pod", sandboxID, "error", err)
		return
	}

	var info struct {
		NetNSPath string `json:"netNamespacePath"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.NetNSPath == "" {
		return
	}
	c.mu.Lock()
	c.netns = append(c.netns, info.NetNSPath)
	c.mu.Unlock()
}

// StopPod stops every container of the pod and its sandbox.
func (c *Containerd) StopPod(ctx context.Context, pod *Pod) error {
	_, err := c.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.SandboxID})
	if err != nil {
		return fmt.Errorf("stop pod sandbox %s: %w", pod.SandboxID, err)
	}
	return nil
}

// RemovePod stops and removes the pod with all its containers.
func (c *Containerd) RemovePod(ctx context.Context, pod *Pod) error {
	if err := c.StopPod(ctx, pod); err != nil {
		return err
	}

	_, err := c.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.SandboxID})
	if err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", pod.SandboxID, err)
	}
	return nil
}

// ContainerStatus returns the CRI status of a container.
func (c *Containerd) ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	resp, err := c.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, fmt.Errorf("status of container %s: %w", id, err)
	}
	return resp.GetStatus(), nil
}

// ContainerState returns just the state of a container.
func (c *Containerd) ContainerState(ctx context.Context, id string) (runtimeapi.ContainerState, error) {
	status, err := c.ContainerStatus(ctx, id)
	if err != nil {
		return runtimeapi.ContainerState_CONTAINER_UNKNOWN, err
	}
	return status.GetState(), nil
}

// ListContainers lists every container (all attempts) of a pod.
func (c *Containerd) ListContainers(ctx context.Context, pod *Pod) ([]*runtimeapi.Container, error) {
	resp, err := c.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod.SandboxID},
	})
	if err != nil {
		return nil, fmt.Errorf("list containers of pod %s: %w", pod.SandboxID, err)
	}
	return resp.GetContainers(), nil
}

// WaitContainerExited polls until the container has exited and returns its
// final status, which holds the exit code.
func (c *Containerd) WaitContainerExited(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()

	for {
		status, err := c.ContainerStatus(ctx, id)
		if err != nil {
			return nil, err
		}
		if status.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return status, nil
		}

		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for container %s to exit: %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}
