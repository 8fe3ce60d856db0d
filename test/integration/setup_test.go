// Package integration runs nodedebug's cluster path against a real
// single-node cluster (test/cluster): the API server authenticates,
// authorizes and audits, proxies to the gateway through the aggregation
// layer, and the gateway reaches the agent over mutual TLS.
//
// The agent and the gateway run as host processes from the binary built
// from this checkout, not as the DaemonSet and Deployment: no image
// builder runs here. The gateway runs in the cluster's network namespace,
// so the API server reaches it at a non-loopback endpoint address, as it
// would reach a pod. A pause pod with the agent's labels and host network
// stands in for the agent's pod, so the gateway finds the agent through
// the API exactly as in a cluster.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodedebug/nodedebug/test/cluster"
	"github.com/nodedebug/nodedebug/test/harness"
)

const (
	targetNamespace = "shop"
	targetPod       = "web"
	gatewayPort     = 8443
)

// env is what every test of the cluster path shares.
type env struct {
	c      *cluster.Cluster
	imgs   harness.Images
	dir    string
	binary string
	// deploy is a copy of deploy/ with certificates from deploy/certs.sh.
	deploy    string
	certs     string
	agentAddr string
	agent     *cluster.Process
	gateway   *cluster.Process
}

func start(t *testing.T, ctx context.Context) *env {
	t.Helper()
	began := time.Now()
	c, imgs := cluster.StartT(t, ctx, "alice", "bob", "carol")
	t.Logf("cluster ready after %s", time.Since(began).Round(time.Millisecond))

	e := &env{c: c, imgs: imgs, dir: t.TempDir()}
	var err error
	if e.binary, err = buildNodedebug(ctx, e.dir); err != nil {
		t.Fatal(err)
	}
	if e.deploy, err = copyDeploy(ctx, e.dir); err != nil {
		t.Fatal(err)
	}
	e.certs = filepath.Join(e.deploy, "certs")
	return e
}

func buildNodedebug(ctx context.Context, dir string) (string, error) {
	binary := filepath.Join(dir, "nodedebug")
	// As make build: static, since the agent's binary is also the tool
	// containers' init; with cgo, for the nsenter constructor.
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "netgo,osusergo",
		"-ldflags", `-extldflags "-static"`, "-o", binary, ".")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build nodedebug: %w\n%s", err, out)
	}
	return binary, nil
}

// copyDeploy copies deploy/ and runs its certs.sh in the copy, as an
// installer would.
func copyDeploy(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "deploy")
	if err := os.CopyFS(out, os.DirFS("../../deploy")); err != nil {
		return "", fmt.Errorf("copy deploy/: %w", err)
	}
	os.RemoveAll(filepath.Join(out, "certs"))

	cmd := exec.CommandContext(ctx, "bash", filepath.Join(out, "certs.sh"))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("deploy/certs.sh: %w\n%s", err, b)
	}
	return out, nil
}

// kubectl runs the cluster's kubectl as admin.
func (e *env) kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	kubeconfig, err := e.c.WriteKubeconfig(cluster.AdminUser)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, e.c.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %v: %w\n%s", args, err, stderr.Bytes())
	}
	return out, nil
}

// startAgent runs the agent on kubelet's containerd with the gateway
// listener on the node's address, where the stand-in pod's IP points.
func (e *env) startAgent(t *testing.T, ctx context.Context) {
	t.Helper()
	port, err := freePort(e.c.HostIP)
	if err != nil {
		t.Fatal(err)
	}
	e.agentAddr = net.JoinHostPort(e.c.HostIP.String(), strconv.Itoa(port))
	socket := filepath.Join(e.dir, "agent.sock")

	e.agent, err = cluster.StartProcess("agent", filepath.Join(e.dir, "agent.log"), nil, e.binary, "agent",
		"--runtime-endpoint", "unix://"+e.c.Containerd().Socket,
		"--listen", socket,
		"--toolbox-tar", e.imgs.Toolbox.Path,
		"--state-dir", filepath.Join(e.dir, "state"),
		"--listen-tls", e.agentAddr,
		"--tls-cert", filepath.Join(e.certs, "agent.crt"),
		"--tls-key", filepath.Join(e.certs, "agent.key"),
		"--tls-client-ca", filepath.Join(e.certs, "ca.crt"),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopLogged(t, e.agent) })

	err = cluster.Poll(ctx, "agent", func(ctx context.Context) error {
		return exec.CommandContext(ctx, e.binary, "ping", "--agent", "unix://"+socket).Run()
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, e.agent.LogTail())
	}
}

// standInAgentPod is what the gateway finds on the node: a pod with the
// agent's labels whose IP (host network) is where the agent listens.
func (e *env) standInAgentPod(t *testing.T, ctx context.Context) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nodedebug-agent-" + e.c.NodeName, Namespace: "nodedebug",
			Labels: map[string]string{"app.kubernetes.io/name": "nodedebug-agent"}},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{{Name: "agent", Image: e.imgs.Pause.Ref,
				ImagePullPolicy: corev1.PullNever}},
		},
	}
	got, err := e.c.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.PodIP != e.c.HostIP.String() {
		t.Fatalf("stand-in agent pod has IP %q, want the node's %s", got.Status.PodIP, e.c.HostIP)
	}
}

// startGateway runs the gateway in the network namespace with the token
// of its service account from deploy/, and points the Service at it.
func (e *env) startGateway(t *testing.T, ctx context.Context) {
	t.Helper()
	token, err := e.c.ServiceAccountToken(ctx, "nodedebug", "nodedebug-gateway")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := e.c.WriteTokenKubeconfig("gateway", token)
	if err != nil {
		t.Fatal(err)
	}
	_, agentPort, _ := net.SplitHostPort(e.agentAddr)

	e.gateway, err = cluster.StartProcess("gateway", filepath.Join(e.dir, "gateway.log"),
		e.c.Netns.Exec(), e.binary, "gateway",
		"--listen", net.JoinHostPort(e.c.Netns.PeerIP.String(), strconv.Itoa(gatewayPort)),
		"--kubeconfig", kubeconfig,
		"--tls-cert", filepath.Join(e.certs, "gateway.crt"),
		"--tls-key", filepath.Join(e.certs, "gateway.key"),
		"--agent-ca", filepath.Join(e.certs, "ca.crt"),
		"--agent-client-cert", filepath.Join(e.certs, "gateway.crt"),
		"--agent-client-key", filepath.Join(e.certs, "gateway.key"),
		"--agent-port", agentPort,
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopLogged(t, e.gateway) })

	if err := e.gatewayEndpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.waitAPIService(ctx); err != nil {
		t.Fatalf("%v\n%s", err, e.gateway.LogTail())
	}
}

// gatewayEndpoint does the endpoint controller's job for the gateway
// Service: there is no controller manager here.
func (e *env) gatewayEndpoint(ctx context.Context) error {
	ready, port, name := true, int32(gatewayPort), "https"
	tcp := corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "nodedebug-gateway-test", Namespace: "nodedebug",
			Labels: map[string]string{
				discoveryv1.LabelServiceName: "nodedebug-gateway",
				discoveryv1.LabelManagedBy:   "nodedebug-integration-test",
			}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{e.c.Netns.PeerIP.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &tcp}},
	}
	_, err := e.c.Client.DiscoveryV1().EndpointSlices("nodedebug").Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create endpoint slice of the gateway: %w", err)
	}
	return nil
}

// waitAPIService waits until the API server reports the APIService
// Available: it reached the gateway's discovery with its proxy identity.
func (e *env) waitAPIService(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	return cluster.Poll(ctx, "APIService v1alpha1.nodedebug.io Available", func(ctx context.Context) error {
		raw, err := e.c.Client.Discovery().RESTClient().Get().
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
			return err
		}
		for _, cond := range svc.Status.Conditions {
			if cond.Type == "Available" && cond.Status == metav1.ConditionTrue {
				return nil
			}
			if cond.Type == "Available" {
				return fmt.Errorf("%s: %s", cond.Reason, cond.Message)
			}
		}
		return fmt.Errorf("no Available condition yet")
	})
}

// grant binds user to nodedebug-user in the target namespace and, with
// exec, lets them create pods/exec there.
func (e *env) grant(t *testing.T, ctx context.Context, user string, exec bool) {
	t.Helper()
	rbac := e.c.Client.RbacV1().RoleBindings(targetNamespace)
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}

	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user + "-nodedebug"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nodedebug-user"},
		Subjects: subject}
	if _, err := rbac.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind %s to nodedebug-user: %v", user, err)
	}
	if !exec {
		return
	}

	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user + "-exec"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/exec"},
			Verbs: []string{"create"}}}}
	if _, err := e.c.Client.RbacV1().Roles(targetNamespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create exec role: %v", err)
	}
	binding = &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user + "-exec"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user + "-exec"},
		Subjects: subject}
	if _, err := rbac.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind %s to exec role: %v", user, err)
	}
}

// result is one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// attach runs `nodedebug attach` as user through the API server.
func (e *env) attach(t *testing.T, ctx context.Context, user string, args ...string) result {
	t.Helper()
	return e.attachStdin(t, ctx, user, "", args...)
}

// attachStdin is attach with stdin from a string.
func (e *env) attachStdin(t *testing.T, ctx context.Context, user, stdin string, args ...string) result {
	t.Helper()
	kubeconfig, err := e.c.WriteKubeconfig(user)
	if err != nil {
		t.Fatal(err)
	}

	argv := append([]string{"attach", "--kubeconfig", kubeconfig, "-n", targetNamespace}, args...)
	cmd := exec.CommandContext(ctx, e.binary, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()

	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if exitErr, ok := err.(*exec.ExitError); ok {
		r.code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run nodedebug %v: %v", argv, err)
	}
	t.Logf("%s: nodedebug %v: exit %d, stderr %q", user, args, r.code, r.stderr)
	return r
}

func stopLogged(t *testing.T, p *cluster.Process) {
	if err := p.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if t.Failed() {
		t.Log(p.LogTail())
	}
}

func freePort(ip net.IP) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
