package cri

import (
	"context"
	"encoding/json"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerPid returns the host pid of a running container's main process,
// from the verbose status both containerd and CRI-O give.
func (c *Client) ContainerPid(ctx context.Context, id string) (int, error) {
	resp, err := c.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, fmt.Errorf("status of container %s: %w", id, err)
	}

	var t Target
	if err := parseInfo(resp.GetInfo(), &t); err != nil {
		return 0, fmt.Errorf("read the verbose status of container %s: %w", id, err)
	}
	if t.Pid <= 0 {
		return 0, fmt.Errorf("the runtime reports no pid for container %s", id)
	}
	return t.Pid, nil
}

// SandboxConfig returns the config a pod sandbox was created with, as far
// as the runtime tells it: the whole config from containerd's verbose
// info, or else its metadata, labels and annotations.
func (c *Client) SandboxConfig(ctx context.Context, id string) (*runtimeapi.PodSandboxConfig, error) {
	resp, err := c.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("status of pod sandbox %s: %w", id, err)
	}

	var info struct {
		Config *runtimeapi.PodSandboxConfig `json:"config"`
	}
	if blob, ok := resp.GetInfo()["info"]; ok && json.Unmarshal([]byte(blob), &info) == nil && info.Config != nil {
		return info.Config, nil
	}

	st := resp.GetStatus()
	return &runtimeapi.PodSandboxConfig{
		Metadata:    st.GetMetadata(),
		Labels:      st.GetLabels(),
		Annotations: st.GetAnnotations(),
	}, nil
}

// LabelToolSession marks the agent's own tool containers; those created
// through CRI sit in the target's pod and are never targets themselves.
const LabelToolSession = "nodedebug.io/session"

// withoutToolContainers drops the agent's tool containers from a pod's.
func withoutToolContainers(containers []*runtimeapi.Container) []*runtimeapi.Container {
	var kept []*runtimeapi.Container
	for _, c := range containers {
		if _, tool := c.GetLabels()[LabelToolSession]; !tool {
			kept = append(kept, c)
		}
	}
	return kept
}
