package integration

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// testCleanupAfterClientSIGKILL: a client killed mid-session closes its
// connection to the API server, which closes the gateway's websocket; the
// gateway cancels the agent stream and the agent removes the tool
// container.
func testCleanupAfterClientSIGKILL(t *testing.T, ctx context.Context, e *env) {
	kubeconfig, err := e.c.WriteKubeconfig("alice")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, e.binary, "attach", "--kubeconfig", kubeconfig, "-n", targetNamespace,
		targetPod, "--", "sh", "-c", "sleep 300 & echo ready; exec sleep 301")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("tool said %q, want ready", line)
	}
	if n := e.toolContainers(t, ctx); n != 1 {
		t.Errorf("%d tool containers while the session runs, want 1", n)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	err = pollFor(ctx, 20*time.Second, func() error {
		if n := e.toolContainers(t, ctx); n != 0 {
			return fmt.Errorf("%d tool containers left", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the client was killed: %v\n%s", err, e.install.Gateway.LogTail())
	}
}

// toolContainers counts containers in the agent's containerd namespace.
func (e *env) toolContainers(t *testing.T, ctx context.Context) int {
	t.Helper()
	client, err := e.c.Containerd().NewClient("nodedebug")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	containers, err := client.Containers(namespaces.WithNamespace(ctx, "nodedebug"))
	if err != nil {
		t.Fatal(err)
	}
	return len(containers)
}

func pollFor(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
