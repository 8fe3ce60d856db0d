package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/nodedebug/nodedebug/api"
	"github.com/nodedebug/nodedebug/test/cluster"
	"github.com/nodedebug/nodedebug/test/images"
)

// TestClusterPath installs deploy/ into a real cluster and attaches
// through the API server as users with and without the permissions.
func TestClusterPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := start(t, ctx)

	// Not a subtest that may be skipped: everything after needs deploy/.
	t.Run("kustomize output passes server-side dry run", func(t *testing.T) {
		e.installDeploy(t, ctx)
	})
	if t.Failed() {
		t.FailNow()
	}

	began := time.Now()
	if err := e.install.StartAgent(ctx, e.imgs.Toolbox.Path, e.imgs.Pause.Ref); err != nil {
		t.Fatal(err)
	}
	if err := e.install.StartGateway(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.RunPod(ctx, cluster.TargetPod(targetNamespace, targetPod, e.imgs.Target.Ref)); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent, gateway and target pod ready after %s", time.Since(began).Round(time.Millisecond))

	e.grant(t, ctx, "alice", true)
	e.grant(t, ctx, "carol", false)

	t.Run("allowed user reads the target's file", func(t *testing.T) {
		r := e.attach(t, ctx, "alice", "--reason", "INC-7", targetPod, "--", "cat", "/target/etc/app.conf")
		if r.code != 0 || r.stdout != images.TargetConfig {
			t.Errorf("exit %d, stdout %q; want 0 and %q", r.code, r.stdout, images.TargetConfig)
		}
	})
	t.Run("exit code comes back", func(t *testing.T) {
		r := e.attach(t, ctx, "alice", targetPod+"/app", "--", "sh", "-c", "echo out; echo err >&2; exit 5")
		if r.code != 5 || r.stdout != "out\n" || !strings.Contains(r.stderr, "err\n") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 5, \"out\\n\", \"err\\n\"", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("stdin and its EOF reach the tool", func(t *testing.T) {
		r := e.attachStdin(t, ctx, "alice", "hello, target", "-i", targetPod, "--", "wc", "-c")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "13" {
			t.Errorf("exit %d, stdout %q; want 0 and 13", r.code, r.stdout)
		}
	})
	t.Run("terminal has the client's size and passes the exit code", func(t *testing.T) {
		testTerminalSizeAndExit(t, ctx, e)
	})
	t.Run("terminal resizes are forwarded", func(t *testing.T) {
		testTerminalResize(t, ctx, e)
	})
	t.Run("client killed: tool container removed", func(t *testing.T) {
		testCleanupAfterClientSIGKILL(t, ctx, e)
	})
	t.Run("audit log names the user", func(t *testing.T) {
		e.checkAudit(t, "alice")
	})
	t.Run("agent audit log names the user", func(t *testing.T) {
		e.checkAgentAudit(t, "alice")
	})
	t.Run("user without the binding is refused by the API server", func(t *testing.T) {
		r := e.attach(t, ctx, "bob", targetPod, "--", "true")
		want := `User "bob" cannot get resource "pods/attach" in API group "nodedebug.io" in the namespace "shop"` +
			` (nodedebug attach needs a binding to the ClusterRole nodedebug-user, and create on pods/exec)`
		if r.code != 125 || !strings.Contains(r.stderr, want) {
			t.Errorf("exit %d, stderr %q; want 125 and %q", r.code, r.stderr, want)
		}
	})
	t.Run("user without pods/exec is refused by the gateway", func(t *testing.T) {
		r := e.attach(t, ctx, "carol", targetPod, "--", "true")
		want := `user "carol" may not create pods/exec on pod shop/web`
		if r.code != 125 || !strings.Contains(r.stderr, want) {
			t.Errorf("exit %d, stderr %q; want 125 and %q", r.code, r.stderr, want)
		}
	})
	t.Run("unknown pod is named", func(t *testing.T) {
		r := e.attach(t, ctx, "alice", "nope", "--", "true")
		if r.code != 125 || !strings.Contains(r.stderr, "nope") {
			t.Errorf("exit %d, stderr %q; want 125 naming the pod", r.code, r.stderr)
		}
	})
	t.Run("works as a kubectl plugin", func(t *testing.T) {
		e.checkPlugin(t, ctx)
	})
	t.Run("shell completion lists pods and containers", func(t *testing.T) {
		e.checkCompletion(t, ctx)
	})
	t.Run("agent accepts only the gateway's certificate", func(t *testing.T) {
		e.checkAgentIdentity(t, ctx)
	})
}

// installDeploy has the API server dry-run deploy/, then applies it.
func (e *env) installDeploy(t *testing.T, ctx context.Context) {
	out, err := e.install.Apply(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server-side dry run:\n%s", out)
	for _, kind := range []string{"daemonset.apps/nodedebug-agent", "deployment.apps/nodedebug-gateway",
		"apiservice.apiregistration.k8s.io/v1alpha1.nodedebug.io", "clusterrole.rbac.authorization.k8s.io/nodedebug-user",
		"poddisruptionbudget.policy/nodedebug-gateway", "networkpolicy.networking.k8s.io/nodedebug-agent",
		"service/nodedebug-gateway", "secret/nodedebug-gateway-tls"} {
		if !strings.Contains(string(out), kind) {
			t.Errorf("dry run did not report %s", kind)
		}
	}

	if _, err := e.install.Apply(ctx, false); err != nil {
		t.Fatal(err)
	}
}

// checkPlugin runs `kubectl nodedebug attach` with nodedebug on PATH as
// kubectl-nodedebug.
func (e *env) checkPlugin(t *testing.T, ctx context.Context) {
	dir := t.TempDir()
	if err := os.Symlink(e.binary, filepath.Join(dir, "kubectl-nodedebug")); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := e.c.WriteKubeconfig("alice")
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, e.c.Kubectl(), "nodedebug", "attach", "--kubeconfig", kubeconfig,
		"-n", targetNamespace, targetPod, "--", "cat", "/target/etc/app.conf")
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := cmd.Output()
	if err != nil || string(out) != images.TargetConfig {
		t.Errorf("kubectl nodedebug attach: %v, stdout %q", err, out)
	}
}

// checkCompletion asks cobra's completion command, as a shell would.
func (e *env) checkCompletion(t *testing.T, ctx context.Context) {
	kubeconfig, err := e.c.WriteKubeconfig("alice")
	if err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]string{"w": "web", "web/": "web/app"} {
		out, err := exec.CommandContext(ctx, e.binary, "__complete", "attach", "--kubeconfig", kubeconfig,
			"-n", targetNamespace, prefix).Output()
		if err != nil {
			t.Fatalf("complete %q: %v", prefix, err)
		}
		if lines := strings.Split(string(out), "\n"); lines[0] != want {
			t.Errorf("complete %q = %q, want %s first", prefix, out, want)
		}
	}
}

// checkAgentAudit looks for a session of the gateway-verified user in the
// agent's own audit log.
func (e *env) checkAgentAudit(t *testing.T, user string) {
	data, err := os.ReadFile(e.install.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		var rec struct {
			Event  string `json:"event"`
			Reason string `json:"reason"`
			User   struct {
				Kubernetes string `json:"kubernetes"`
			} `json:"user"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Event == "session.start" &&
			rec.User.Kubernetes == user && rec.Reason == "INC-7" {
			return
		}
	}
	t.Errorf("agent audit log has no session.start by %s with reason INC-7:\n%s", user, data)
}

// checkAudit looks for alice's attach in the API server's audit log.
func (e *env) checkAudit(t *testing.T, user string) {
	f, err := os.Open(e.c.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	path := "/apis/nodedebug.io/v1alpha1/namespaces/shop/pods/web/attach"
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var event struct {
			RequestURI string `json:"requestURI"`
			User       struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(scanner.Bytes(), &event) != nil {
			continue
		}
		if event.User.Username == user && strings.HasPrefix(event.RequestURI, path) &&
			event.ObjectRef.Subresource == "attach" {
			return
		}
	}
	t.Errorf("audit log %s has no attach to shop/web by %s", e.c.AuditLog, user)
}

// checkAgentIdentity dials the agent's TLS listener with the gateway's
// certificate, with none, with one from another CA, and with one from the
// right CA under another name; only the first may call it.
func (e *env) checkAgentIdentity(t *testing.T, ctx context.Context) {
	dir := t.TempDir()
	other, err := cluster.NewCA(dir, "other-ca")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Issue(cluster.CertSpec{Name: "foreign", CommonName: "nodedebug-gateway", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := cluster.LoadCA(filepath.Join(e.install.Certs, "ca.crt"), filepath.Join(e.install.Certs, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := ca.Issue(cluster.CertSpec{Name: "impostor", CommonName: "someone-else", Client: true})
	if err != nil {
		t.Fatal(err)
	}

	gateway := cluster.KeyPair{CertFile: filepath.Join(e.install.Certs, "gateway.crt"),
		KeyFile: filepath.Join(e.install.Certs, "gateway.key")}
	tests := []struct {
		name string
		cert *cluster.KeyPair
		ok   bool
	}{
		{name: "gateway", cert: &gateway, ok: true},
		{name: "no certificate"},
		{name: "certificate from another CA", cert: &foreign},
		{name: "right CA, other name", cert: &impostor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.callAgent(ctx, tt.cert)
			if tt.ok && err != nil {
				t.Errorf("agent refused the gateway: %v", err)
			}
			if !tt.ok && err == nil {
				t.Errorf("agent answered a client with %s", tt.name)
			}
		})
	}
}

func (e *env) callAgent(ctx context.Context, cert *cluster.KeyPair) error {
	pem, err := os.ReadFile(filepath.Join(e.install.Certs, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	config := &tls.Config{RootCAs: pool, ServerName: "nodedebug-agent"}
	if cert != nil {
		pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
		if err != nil {
			return err
		}
		config.Certificates = []tls.Certificate{pair}
	}

	conn, err := grpc.NewClient(e.install.AgentAddr, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = api.NewAgentClient(conn).Runtime(ctx, &api.RuntimeRequest{})
	return err
}
