package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodedebug/nodedebug/test/harness"
)

// pathAgent is an agent started with one --path, on its own socket and
// state folder, beside the suite's containerd-path agent.
type pathAgent struct {
	name     string
	endpoint string
	process  *agentProcess
}

// startPathAgent starts `nodedebug agent` with extra flags, listening on
// a socket of its own, and stops it when the test ends.
func (s *suite) startPathAgent(t *testing.T, name string, extra ...string) *pathAgent {
	t.Helper()
	socket := filepath.Join(s.dir, name+".sock")
	args := s.agentArgs()
	if slices.Contains(extra, "--detect-root") {
		args = withoutFlag(args, "--runtime-endpoint")
	}
	args = withFlag(args, "--listen", socket)
	args = withFlag(args, "--state-dir", filepath.Join(s.dir, "state-"+name))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	a := &agentProcess{log: &bytes.Buffer{}, exited: make(chan struct{})}
	a.cmd = exec.Command(s.binary, append(args, extra...)...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start %s agent: %v", name, err)
	}
	go func() {
		_ = a.cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("%s agent log:\n%s", name, a.log)
		}
	})

	if err := waitForSocket(ctx, socket, a.exited); err != nil {
		t.Fatalf("%s agent: %v\nagent log:\n%s", name, err, a.log)
	}
	return &pathAgent{name: name, endpoint: "unix://" + socket, process: a}
}

// withFlag replaces the value that follows flag in args.
func withFlag(args []string, flag, value string) []string {
	args = slices.Clone(args)
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		args[i+1] = value
	}
	return args
}

// withoutFlag drops flag and its value from args.
func withoutFlag(args []string, flag string) []string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return slices.Delete(slices.Clone(args), i, i+2)
	}
	return args
}

// attachVia runs `nodedebug attach` against one path's agent.
func (s *suite) attachVia(t *testing.T, a *pathAgent, stdin io.Reader, args ...string) result {
	t.Helper()
	base := []string{"attach", "--agent", a.endpoint, "-n", podNamespace}
	return s.run(t, stdin, append(base, args...)...)
}

// pathCheck is one assertion every path must pass.
type pathCheck struct {
	name string
	run  func(t *testing.T, s *suite, a *pathAgent, pod *harness.Pod)
}

var pathChecks = []pathCheck{
	{"ps shows the target", checkPs},
	{"target root readable for a uid-65532 target", checkTargetRoot},
	{"exit code", checkExitCode},
	{"command not found is 127", checkNotFound},
	{"10 MB stdin is byte-exact", checkStdinSha},
	{"terminal size and exit code", checkTTY},
}

func checkPs(t *testing.T, s *suite, a *pathAgent, pod *harness.Pod) {
	r := s.attachVia(t, a, nil, pod.Spec.Name+"/app", "--", "ps", "-o", "pid,user,args")
	requireCode(t, r, 0)
	if !bytes.Contains(r.stdout, []byte("/app")) {
		t.Fatalf("ps does not list the target's binary:\n%s", r.stdout)
	}
}

func checkTargetRoot(t *testing.T, s *suite, a *pathAgent, pod *harness.Pod) {
	r := s.attachVia(t, a, nil, pod.Spec.Name, "--", "cat", "/target/etc/app.conf")
	requireCode(t, r, 0)
	if string(r.stdout) != appConf {
		t.Fatalf("cat /target/etc/app.conf = %q, want %q", r.stdout, appConf)
	}
}

func checkExitCode(t *testing.T, s *suite, a *pathAgent, pod *harness.Pod) {
	r := s.attachVia(t, a, nil, pod.Spec.Name, "--", "sh", "-c", "echo out; echo err >&2; exit 5")
	requireCode(t, r, 5)
	if string(r.stdout) != "out\n" || string(r.stderr) != "err\n" {
		t.Fatalf("stdout and stderr are not separate: %s", r)
	}
}

func checkNotFound(t *testing.T, s *suite, a *pathAgent, pod *harness.Pod) {
	r := s.attachVia(t, a, nil, pod.Spec.Name, "--", "no-such-command")
	requireCode(t, r, 127)
}

func checkStdinSha(t *testing.T, s *suite, a *pathAgent, pod *harness.Pod) {
	data := make([]byte, 10<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	r := s.attachVia(t, a, bytes.NewReader(data), "-i", pod.Spec.Name, "--", "sha256sum")
	requireCode(t, r, 0)
	if want := hex.EncodeToString(sum[:]); !bytes.HasPrefix(r.stdout, []byte(want)) {
		t.Fatalf("sha256 of stdin = %q, want %s", r.stdout, want)
	}
}

func checkTTY(t *testing.T, s *suite, a *pathAgent, pod *harness.Pod) {
	requireTTYSizeAndExit(t, s, a.endpoint, pod)
}

// TestAttachOnEveryPath runs the same checks through each way of
// starting tool processes, then checks that nothing is left behind.
func TestAttachOnEveryPath(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	targetPid := s.targetPid(t, pod.ContainerIDs["app"])

	agents := []*pathAgent{
		{name: "containerd", endpoint: s.agentEndpoint()},
		s.startPathAgent(t, "cri", "--path", "cri"),
		s.startPathAgent(t, "nsenter", "--path", "nsenter"),
	}
	for _, a := range agents {
		t.Run(a.name, func(t *testing.T) {
			timeAttach(t, s, a, pod)
			for _, check := range pathChecks {
				t.Run(check.name, func(t *testing.T) { check.run(t, s, a, pod) })
			}

			requireOnlyTarget(t, targetPid, 10*time.Second)
			s.requireNoToolContainers(t, 10*time.Second)
			s.requireNoCRIToolContainers(t, 10*time.Second)
		})
	}
}

// timeAttach logs how long one short attach takes on a path.
func timeAttach(t *testing.T, s *suite, a *pathAgent, pod *harness.Pod) {
	start := time.Now()
	r := s.attachVia(t, a, nil, pod.Spec.Name, "--", "true")
	requireCode(t, r, 0)
	t.Logf("attach -- true through the %s path took %s", a.name, time.Since(start).Round(time.Millisecond))
}

// requireNoCRIToolContainers fails unless every CRI-path tool container,
// found by the agent's session label, is gone within the timeout.
func (s *suite) requireNoCRIToolContainers(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := s.criToolContainers(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRI tool containers left after %s: %v", timeout, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *suite) criToolContainers(t *testing.T) []string {
	t.Helper()
	resp, err := s.containerd.RuntimeClient().ListContainers(context.Background(),
		&runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}

	var left []string
	for _, c := range resp.GetContainers() {
		if _, ok := c.GetLabels()["nodedebug.io/session"]; ok {
			left = append(left, fmt.Sprintf("%s (%s)", c.GetMetadata().GetName(), c.GetState()))
		}
	}
	return left
}

// TestAgentDetectsRuntimeSocket lays out the usual socket paths under a
// temporary root: a plain file where containerd's socket would be, and
// the test containerd at k3s's path. The agent, given no endpoint, must
// pick k3s's and serve through it.
func TestAgentDetectsRuntimeSocket(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	root := t.TempDir()
	decoy := filepath.Join(root, "run/containerd/containerd.sock")
	k3s := filepath.Join(root, "run/k3s/containerd/containerd.sock")
	for _, dir := range []string{filepath.Dir(decoy), filepath.Dir(k3s)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(decoy, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(s.containerd.Socket, k3s); err != nil {
		t.Fatal(err)
	}

	a := s.startPathAgent(t, "detect", "--detect-root", root)
	r := s.attachVia(t, a, nil, pod.Spec.Name, "--", "cat", "/target/etc/app.conf")
	requireCode(t, r, 0)

	log := a.process.log.String()
	if !strings.Contains(log, `"endpoint":"`+k3s+`"`) || !strings.Contains(log, `"path":"containerd"`) {
		t.Fatalf("the agent did not report k3s's socket and the containerd path:\n%s", log)
	}
}
