package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GatewayPort is where the gateway listens inside the network namespace.
const GatewayPort = 8443

// Install is nodedebug installed into the cluster as far as this machine
// allows: deploy/ applied through kustomize; the agent and the gateway as
// host processes of Binary (no image builder runs here), the gateway in
// the cluster's network namespace so the API server reaches it at a
// non-loopback endpoint, as it would reach a pod; and a host-network pause
// pod with the agent's labels standing in for the agent's pod, so the
// gateway finds the agent through the API exactly as in a cluster.
type Install struct {
	// Binary is the nodedebug binary the agent runs; nodedebug-gateway
	// sits next to it.
	Binary string
	// Deploy is a copy of deploy/ with certificates from its certs.sh.
	Deploy string
	// Certs is Deploy/certs.
	Certs string
	// AgentAddr is the agent's mutual-TLS address.
	AgentAddr string
	// AuditLog is the agent's audit log.
	AuditLog string
	Agent    *Process
	Gateway  *Process

	c   *Cluster
	dir string
}

// NewInstall copies deployDir into dir and writes its certificates.
func (c *Cluster) NewInstall(ctx context.Context, binary, deployDir, dir string) (*Install, error) {
	out := filepath.Join(dir, "deploy")
	if err := os.CopyFS(out, os.DirFS(deployDir)); err != nil {
		return nil, fmt.Errorf("copy %s: %w", deployDir, err)
	}
	os.RemoveAll(filepath.Join(out, "certs"))

	cmd := exec.CommandContext(ctx, "bash", filepath.Join(out, "certs.sh"))
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("deploy/certs.sh: %w\n%s", err, b)
	}
	return &Install{Binary: binary, Deploy: out, Certs: filepath.Join(out, "certs"), c: c, dir: dir}, nil
}

// Run is the whole install: apply, agent, gateway.
func (i *Install) Run(ctx context.Context, toolboxTar, pauseImage string) error {
	if _, err := i.Apply(ctx, false); err != nil {
		return err
	}
	if err := i.StartAgent(ctx, toolboxTar, pauseImage); err != nil {
		return err
	}
	return i.StartGateway(ctx)
}

// Apply builds deploy/ with kubectl kustomize and applies it server-side,
// or only has the API server dry-run it. It returns kubectl's output.
func (i *Install) Apply(ctx context.Context, dryRun bool) ([]byte, error) {
	manifests, err := i.c.KubectlRun(ctx, nil, "kustomize", i.Deploy)
	if err != nil {
		return nil, err
	}
	// Namespaced objects need their namespace to exist, even in a dry run.
	if _, err := i.c.KubectlRun(ctx, nil, "apply", "-f", filepath.Join(i.Deploy, "namespace.yaml")); err != nil {
		return nil, err
	}

	args := []string{"apply", "--server-side", "-f", "-"}
	if dryRun {
		args = append(args, "--dry-run=server")
	}
	return i.c.KubectlRun(ctx, manifests, args...)
}

// StartAgent runs the agent on kubelet's containerd, with its gateway
// listener on the node's address, and the stand-in pod whose IP is that
// address.
func (i *Install) StartAgent(ctx context.Context, toolboxTar, pauseImage string) error {
	port, err := freePortOn(i.c.HostIP)
	if err != nil {
		return err
	}
	i.AgentAddr = net.JoinHostPort(i.c.HostIP.String(), strconv.Itoa(port))
	i.AuditLog = filepath.Join(i.dir, "agent-audit.log")
	socket := filepath.Join(i.dir, "agent.sock")

	i.Agent, err = StartProcess("agent", filepath.Join(i.dir, "agent.log"), nil, i.Binary, "agent",
		"--runtime-endpoint", "unix://"+i.c.containerd.Socket,
		"--listen", socket,
		"--toolbox-tar", toolboxTar,
		"--state-dir", filepath.Join(i.dir, "state"),
		"--audit-log", i.AuditLog,
		"--listen-tls", i.AgentAddr,
		"--tls-cert", filepath.Join(i.Certs, "agent.crt"),
		"--tls-key", filepath.Join(i.Certs, "agent.key"),
		"--tls-client-ca", filepath.Join(i.Certs, "ca.crt"),
	)
	if err != nil {
		return err
	}

	err = i.c.poll(ctx, i.Agent, func(ctx context.Context) error {
		return exec.CommandContext(ctx, i.Binary, "ping", "--agent", "unix://"+socket).Run()
	})
	if err != nil {
		return err
	}
	return i.standInAgentPod(ctx, pauseImage)
}

func (i *Install) standInAgentPod(ctx context.Context, pauseImage string) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nodedebug-agent-" + i.c.NodeName, Namespace: "nodedebug",
			Labels: map[string]string{"app.kubernetes.io/name": "nodedebug-agent"}},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{{Name: "agent", Image: pauseImage,
				ImagePullPolicy: corev1.PullNever}},
		},
	}
	got, err := i.c.RunPod(ctx, pod)
	if err != nil {
		return err
	}
	if got.Status.PodIP != i.c.HostIP.String() {
		return fmt.Errorf("stand-in agent pod has IP %q, want the node's %s", got.Status.PodIP, i.c.HostIP)
	}
	return nil
}

// StartGateway runs the gateway in the network namespace with the token of
// its service account from deploy/, points the gateway Service at it and
// waits until the API server reports the APIService available.
func (i *Install) StartGateway(ctx context.Context) error {
	token, err := i.c.ServiceAccountToken(ctx, "nodedebug", "nodedebug-gateway")
	if err != nil {
		return err
	}
	kubeconfig, err := i.c.WriteTokenKubeconfig("gateway", token)
	if err != nil {
		return err
	}
	_, agentPort, _ := net.SplitHostPort(i.AgentAddr)

	i.Gateway, err = StartProcess("gateway", filepath.Join(i.dir, "gateway.log"),
		i.c.Netns.Exec(), filepath.Join(filepath.Dir(i.Binary), "nodedebug-gateway"),
		"--listen", net.JoinHostPort(i.c.Netns.PeerIP.String(), strconv.Itoa(GatewayPort)),
		"--kubeconfig", kubeconfig,
		"--tls-cert", filepath.Join(i.Certs, "gateway.crt"),
		"--tls-key", filepath.Join(i.Certs, "gateway.key"),
		"--agent-ca", filepath.Join(i.Certs, "ca.crt"),
		"--agent-client-cert", filepath.Join(i.Certs, "gateway.crt"),
		"--agent-client-key", filepath.Join(i.Certs, "gateway.key"),
		"--agent-port", agentPort,
	)
	if err != nil {
		return err
	}

	if err := i.gatewayEndpoint(ctx); err != nil {
		return err
	}
	return i.c.poll(ctx, i.Gateway, i.apiServiceAvailable)
}

// gatewayEndpoint does the endpoint controller's job for the gateway
// Service: there is no controller manager here.
func (i *Install) gatewayEndpoint(ctx context.Context) error {
	ready, port, name := true, int32(GatewayPort), "https"
	tcp := corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "nodedebug-gateway-test", Namespace: "nodedebug",
			Labels: map[string]string{
				discoveryv1.LabelServiceName: "nodedebug-gateway",
				discoveryv1.LabelManagedBy:   "nodedebug-test-cluster",
			}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{i.c.Netns.PeerIP.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &tcp}},
	}
	_, err := i.c.Client.DiscoveryV1().EndpointSlices("nodedebug").Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create endpoint slice of the gateway: %w", err)
	}
	return nil
}

// apiServiceAvailable: the API server reached the gateway's discovery
// with its front-proxy identity.
func (i *Install) apiServiceAvailable(ctx context.Context) error {
	raw, err := i.c.Client.Discovery().RESTClient().Get().
		AbsPath("/apis/apiregistration.k8s.io/v1/apiservices/v1alpha1.nodedebug.io").DoRaw(ctx)
	if err != nil {
		return err
	}
	var svc struct {
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &svc); err != nil {
		return fmt.Errorf("decode APIService: %w", err)
	}

	for _, cond := range svc.Status.Conditions {
		if cond.Type == "Available" && cond.Status == metav1.ConditionTrue {
			return nil
		}
		if cond.Type == "Available" {
			return fmt.Errorf("APIService not available: %s: %s", cond.Reason, cond.Message)
		}
	}
	return fmt.Errorf("APIService has no Available condition yet")
}

// Stop stops the gateway and the agent.
func (i *Install) Stop() error {
	var errs []error
	for _, p := range []*Process{i.Gateway, i.Agent} {
		if p != nil {
			errs = append(errs, p.Stop())
		}
	}
	return errors.Join(errs...)
}

// KubectlRun runs the cluster's kubectl as admin with stdin.
func (c *Cluster) KubectlRun(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	kubeconfig, err := c.WriteKubeconfig(AdminUser)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, c.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %v: %w\n%s", args, err, stderr.Bytes())
	}
	return out, nil
}

// BuildNodedebug builds nodedebug and nodedebug-gateway from the module at
// root into dir as make build does, and returns nodedebug's path.
func BuildNodedebug(ctx context.Context, root, dir string) (string, error) {
	binary := filepath.Join(dir, "nodedebug")
	// Static, since the agent's binary is also the tool containers' init;
	// with cgo, for the nsenter constructor.
	err := goBuild(ctx, root, "CGO_ENABLED=1", "-tags", "netgo,osusergo",
		"-ldflags", `-extldflags "-static"`, "-o", binary, ".")
	if err != nil {
		return "", err
	}
	return binary, BuildGateway(ctx, root, dir)
}

// BuildGateway builds nodedebug-gateway from the module at root into dir.
func BuildGateway(ctx context.Context, root, dir string) error {
	return goBuild(ctx, root, "CGO_ENABLED=0", "-o", filepath.Join(dir, "nodedebug-gateway"),
		"./cmd/nodedebug-gateway")
}

func goBuild(ctx context.Context, root, env string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", args[len(args)-1], err, out)
	}
	return nil
}

func freePortOn(ip net.IP) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
