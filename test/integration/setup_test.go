// Package integration runs nodedebug's cluster path against a real
// single-node cluster (test/cluster): the API server authenticates,
// authorizes and audits, proxies to the gateway through the aggregation
// layer, and the gateway reaches the agent over mutual TLS.
//
// The agent and the gateway run as host processes of the binary built
// from this checkout, not as the DaemonSet and Deployment; see
// cluster.Install for how close that comes.
package integration

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodedebug/nodedebug/test/cluster"
	"github.com/nodedebug/nodedebug/test/harness"
)

const (
	targetNamespace = "shop"
	targetPod       = "web"
)

// env is what every test of the cluster path shares.
type env struct {
	c       *cluster.Cluster
	imgs    harness.Images
	dir     string
	binary  string
	install *cluster.Install
}

func start(t *testing.T, ctx context.Context) *env {
	t.Helper()
	began := time.Now()
	c, imgs := cluster.StartT(t, ctx, "alice", "bob", "carol")
	t.Logf("cluster ready after %s", time.Since(began).Round(time.Millisecond))

	e := &env{c: c, imgs: imgs, dir: t.TempDir()}
	var err error
	if e.binary, err = cluster.BuildNodedebug(ctx, "../..", e.dir); err != nil {
		t.Fatal(err)
	}
	if e.install, err = c.NewInstall(ctx, e.binary, "../../deploy", e.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.install.Stop(); err != nil {
			t.Errorf("stop agent and gateway: %v", err)
		}
		if t.Failed() {
			logTail(t, e.install.Agent)
			logTail(t, e.install.Gateway)
		}
	})
	return e
}

func logTail(t *testing.T, p *cluster.Process) {
	if p != nil {
		t.Log(p.LogTail())
	}
}

// grant binds user to nodedebug-user in the target namespace and, with
// exec, lets them create pods/exec and read pods there.
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
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}},
			// What kubectl exec users have too; completion lists pods with it.
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		}}
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
