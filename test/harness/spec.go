package harness

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sort"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The labels kubelet puts on sandboxes and containers; the agent finds pods
// and containers by them, so tests must set them the same way.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// PodSpec is the part of a Kubernetes pod the harness can run.
type PodSpec struct {
	Namespace             string
	Name                  string
	UID                   string // generated when empty
	Containers            []ContainerSpec
	ShareProcessNamespace bool
	HostNetwork           bool
}

// ContainerSpec is one container of a PodSpec.
type ContainerSpec struct {
	Name           string
	Image          string
	Command        []string // replaces the image entrypoint when set
	Args           []string
	Env            map[string]string
	User           *int64 // RunAsUser
	Group          *int64 // RunAsGroup
	ReadOnlyRootfs bool
	Mounts         []Mount
}

// Mount is a host path bind-mounted into a container.
type Mount struct {
	HostPath      string
	ContainerPath string
	ReadOnly      bool
}

// newUID returns a random RFC 4122 version 4 UUID, like pod UIDs.
func newUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate pod uid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

// namespaceOptions mirrors kubelet: pid is per container unless the pod
// shares it, network is the pod's unless hostNetwork, ipc is the pod's.
func namespaceOptions(spec PodSpec) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if spec.ShareProcessNamespace {
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	if spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	return ns
}

// podLogDir is kubelet's /var/log/pods/<ns>_<name>_<uid>, under logRoot.
func podLogDir(logRoot string, spec PodSpec) string {
	return filepath.Join(logRoot, fmt.Sprintf("%s_%s_%s", spec.Namespace, spec.Name, spec.UID))
}

// sandboxConfig builds the RunPodSandbox config kubelet would send.
func sandboxConfig(spec PodSpec, logRoot, cgroupParent string, attempt uint32) *runtimeapi.PodSandboxConfig {
	// Like kubelet, a host-network pod gets no hostname: it shares the
	// node's UTS namespace, and runc refuses to set a hostname there.
	hostname := spec.Name
	if spec.HostNetwork {
		hostname = ""
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      spec.Name,
			Namespace: spec.Namespace,
			Uid:       spec.UID,
			Attempt:   attempt,
		},
		Hostname:     hostname,
		LogDirectory: podLogDir(logRoot, spec),
		Labels: map[string]string{
			LabelPodName:      spec.Name,
			LabelPodNamespace: spec.Namespace,
			LabelPodUID:       spec.UID,
		},
		Annotations: map[string]string{
			"kubernetes.io/config.source": "api",
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaceOptions(spec),
			},
		},
	}
}

// containerConfig builds the CreateContainer config kubelet would send for
// the given attempt (restart count) of a container.
func containerConfig(pod PodSpec, c ContainerSpec, attempt uint32) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:    &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image},
		Command:  c.Command,
		Args:     c.Args,
		Envs:     envs(c.Env),
		Mounts:   mounts(c.Mounts),
		LogPath:  filepath.Join(c.Name, fmt.Sprintf("%d.log", attempt)),
		Labels: map[string]string{
			LabelContainerName: c.Name,
			LabelPodName:       pod.Name,
			LabelPodNamespace:  pod.Namespace,
			LabelPodUID:        pod.UID,
		},
		Annotations: map[string]string{
			"io.kubernetes.container.restartCount":             fmt.Sprint(attempt),
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File",
			"io.kubernetes.pod.terminationGracePeriod":         "30",
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: securityContext(pod, c),
		},
	}
}

func securityContext(pod PodSpec, c ContainerSpec) *runtimeapi.LinuxContainerSecurityContext {
	sc := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: namespaceOptions(pod),
		ReadonlyRootfs:   c.ReadOnlyRootfs,
	}
	if c.User != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *c.User}
	}
	if c.Group != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *c.Group}
	}
	return sc
}

// envs sorts by key so the same spec always gives the same request.
func envs(env map[string]string) []*runtimeapi.KeyValue {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var out []*runtimeapi.KeyValue
	for _, k := range keys {
		out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(env[k])})
	}
	return out
}

func mounts(ms []Mount) []*runtimeapi.Mount {
	var out []*runtimeapi.Mount
	for _, m := range ms {
		out = append(out, &runtimeapi.Mount{
			HostPath:      m.HostPath,
			ContainerPath: m.ContainerPath,
			Readonly:      m.ReadOnly,
		})
	}
	return out
}
