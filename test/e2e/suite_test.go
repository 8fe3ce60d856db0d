// Package e2e runs nodedebug against a real containerd with its CRI plugin,
// started by the test harness under a temporary folder: real pods, a real
// agent process and the real CLI binary. Nothing is mocked.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/nodedebug/nodedebug/test/harness"
)

// podNamespace is the Kubernetes namespace of every test pod.
const podNamespace = "e2e"

// suite is one containerd, one agent and the nodedebug binary, shared by
// every test in the package: starting containerd is the slow part.
type suite struct {
	dir        string
	binary     string
	images     harness.Images
	containerd *harness.Containerd
	agent      *agentProcess
}

var (
	shared    *suite
	sharedErr error
	setupOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// env returns the shared suite, starting it on first use. It skips when
// the machine cannot run containerd, except under CI=true.
func env(t *testing.T) *suite {
	t.Helper()
	binary := harness.RequireContainerd(t)

	setupOnce.Do(func() { shared, sharedErr = newSuite(binary) })
	if sharedErr != nil {
		t.Fatalf("set up e2e suite: %v", sharedErr)
	}
	return shared
}

func newSuite(containerdBinary string) (*suite, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir, err := os.MkdirTemp("", "nodedebug-e2e-")
	if err != nil {
		return nil, err
	}
	s := &suite{dir: dir}
	if err := s.start(ctx, containerdBinary); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *suite) start(ctx context.Context, containerdBinary string) error {
	var err error
	if s.binary, err = buildNodedebug(ctx, s.dir); err != nil {
		return err
	}
	if s.images, err = harness.BuildImages(ctx, filepath.Join(s.dir, "images")); err != nil {
		return err
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.containerd, err = harness.StartContainerd(ctx, harness.Options{
		Dir:     filepath.Join(s.dir, "containerd"),
		Binary:  containerdBinary,
		Runtime: os.Getenv(harness.EnvRuntime),
		Logger:  log,
	})
	if err != nil {
		return err
	}
	if err := s.containerd.ImportImages(ctx, s.images); err != nil {
		return err
	}

	s.agent, err = s.startAgent(ctx)
	return err
}

// buildNodedebug builds the CLI and agent binary from this checkout.
func buildNodedebug(ctx context.Context, dir string) (string, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}

	binary := filepath.Join(dir, "nodedebug")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "netgo,osusergo",
		"-ldflags", `-extldflags "-static"`, "-o", binary, ".")
	cmd.Dir = root
	// Static, because the agent's binary runs inside tool images as
	// their init; with cgo, for the nsenter constructor.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build nodedebug: %w\n%s", err, out)
	}
	return binary, nil
}

func (s *suite) stop() {
	if s.agent != nil {
		s.agent.stop()
	}
	if s.containerd != nil {
		if err := s.containerd.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop containerd:", err)
		}
	}
	os.RemoveAll(s.dir)
}

func (s *suite) agentSocket() string {
	return filepath.Join(s.dir, "agent.sock")
}

func (s *suite) agentEndpoint() string {
	return "unix://" + s.agentSocket()
}

// agentProcess is a running `nodedebug agent`.
type agentProcess struct {
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan struct{}
}

// agentArgs are the flags every test agent gets.
func (s *suite) agentArgs() []string {
	return []string{"agent",
		"--runtime-endpoint", "unix://" + s.containerd.Socket,
		"--listen", s.agentSocket(),
		"--toolbox-tar", s.images.Toolbox.Path,
		"--state-dir", filepath.Join(s.dir, "state"),
		"--audit-log", filepath.Join(s.dir, "audit.log"),
		"--log-level", "debug",
	}
}

func (s *suite) startAgent(ctx context.Context, extra ...string) (*agentProcess, error) {
	a := &agentProcess{log: &bytes.Buffer{}, exited: make(chan struct{})}
	a.cmd = exec.Command(s.binary, append(s.agentArgs(), extra...)...)
	a.cmd.Stdout = a.log
	a.cmd.Stderr = a.log
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	go func() {
		_ = a.cmd.Wait()
		close(a.exited)
	}()

	if err := waitForSocket(ctx, s.agentSocket(), a.exited); err != nil {
		a.stop()
		return nil, fmt.Errorf("%w\nagent log:\n%s", err, a.log)
	}
	return a, nil
}

func waitForSocket(ctx context.Context, path string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	for {
		if conn, err := dialUnix(path); err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("agent exited before listening")
		case <-ctx.Done():
			return fmt.Errorf("agent socket %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the agent with SIGTERM, as a DaemonSet rollout would.
func (a *agentProcess) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// result is what one nodedebug invocation did.
type result struct {
	stdout []byte
	stderr []byte
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, truncate(r.stdout), truncate(r.stderr))
}

func truncate(b []byte) []byte {
	if len(b) > 2000 {
		return b[:2000]
	}
	return b
}

// run runs the nodedebug binary to completion.
func (s *suite) run(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, s.binary, args...)
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()

	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run nodedebug %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.Bytes(), stderr: stderr.Bytes(), code: cmd.ProcessState.ExitCode()}
}

// attach runs `nodedebug attach` against the suite's agent.
func (s *suite) attach(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return s.run(t, stdin, append([]string{"attach", "--agent", s.agentEndpoint(), "-n", podNamespace}, args...)...)
}

// uid65532 is the distroless "nonroot" user.
var uid65532 = int64(65532)

// targetContainer is the distroless target, running as uid 65532.
func (s *suite) targetContainer(name string) harness.ContainerSpec {
	return harness.ContainerSpec{Name: name, Image: s.images.Target.Ref, User: &uid65532}
}

// runPod starts a pod with a unique name and removes it when the test ends.
func (s *suite) runPod(t *testing.T, spec harness.PodSpec) *harness.Pod {
	t.Helper()
	spec.Namespace = podNamespace
	if spec.Name == "" {
		spec.Name = uniqueName("pod")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	pod, err := s.containerd.RunPod(ctx, spec)
	t.Cleanup(func() {
		if pod == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.containerd.RemovePod(ctx, pod); err != nil {
			t.Errorf("remove pod %s: %v", spec.Name, err)
		}
	})
	if err != nil {
		t.Fatalf("run pod %s: %v", spec.Name, err)
	}
	return pod
}

func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// toolContainers lists the tool containers in the agent's namespace.
func (s *suite) toolContainers(t *testing.T) []string {
	t.Helper()
	client, err := s.containerd.NewClient("nodedebug")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	ctx := namespaces.WithNamespace(context.Background(), "nodedebug")
	containers, err := client.Containers(ctx)
	if err != nil {
		t.Fatalf("list tool containers: %v", err)
	}

	var ids []string
	for _, c := range containers {
		ids = append(ids, c.ID())
	}
	return ids
}

// requireNoToolContainers fails unless every tool container is gone
// within the timeout.
func (s *suite) requireNoToolContainers(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := s.toolContainers(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tool containers still present after %s: %v", timeout, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startSession starts `nodedebug attach` running script in pod and returns
// once the script has printed a line "ready", with the command and a way
// to wait for its end.
func (s *suite) startSession(t *testing.T, endpoint, pod, script string) (*exec.Cmd, func() result) {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command(s.binary, "attach", "--agent", endpoint, "-n", podNamespace, pod, "--", "sh", "-c", script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, stdout, "ready")

	return cmd, func() result {
		_ = cmd.Wait()
		return result{stderr: []byte(stderr.String()), code: cmd.ProcessState.ExitCode()}
	}
}
