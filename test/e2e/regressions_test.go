package e2e

// Regression tests for what a first-time user broke; each test is named
// for the scenario it guards.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/nodedebug/nodedebug/test/harness"
)

func TestSecondAgentLeavesLiveSessionsAlone(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	_, wait := s.startSession(t, s.agentEndpoint(), pod.Spec.Name, "echo ready; sleep 4; exit 7")

	// One agent on the same socket: refused before it touches anything.
	r := s.run(t, nil, s.agentArgs()...)
	requireCode(t, r, exitFailure)
	if !strings.Contains(string(r.stderr), "owned by another agent") {
		t.Fatalf("want the socket refusal, got %s", r)
	}

	// One agent on another socket of the same containerd: it runs, and
	// must leave the first agent's session alone.
	other := s.startPathAgent(t, "other")
	other.process.stop()

	if r := wait(); r.code != 7 {
		t.Fatalf("the live session was disturbed by another agent's start: %s", r)
	}
}

func TestRemoteExitStatusIsNotReportedAsNodedebugError(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	for _, code := range []string{"1", "2", "125"} {
		r := s.attach(t, nil, pod.Spec.Name, "--", "sh", "-c", "exit "+code)
		if r.code != mustAtoi(t, code) || len(r.stderr) != 0 {
			t.Fatalf("remote exit %s: want the same status and an empty stderr, got %s", code, r)
		}
	}
}

func TestAttachTTYWithoutStdinStillEndsOnCtrlC(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	cmd := exec.Command(s.binary, "attach", "--agent", s.agentEndpoint(), "-n", podNamespace,
		"-t", pod.Spec.Name, "--", "sh", "-c", "echo ready; sleep 60")
	terminal, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer terminal.Close()

	newScreen(terminal).waitFor(t, "ready")
	if _, err := terminal.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("Ctrl-C on a -t session without -i did not end it")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit code after Ctrl-C = %d, want 130", code)
	}
	s.requireNoToolContainers(t, 10*time.Second)
}

func TestAttachRunsTheTargetsOwnBinary(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	// The target's app crashes on purpose with -crash: status 3.
	r := s.attach(t, nil, pod.Spec.Name, "--", "/target/app", "-crash", "-error-file", "/tmp/e")
	requireCode(t, r, 3)

	r = s.attach(t, nil, pod.Spec.Name, "--", "/target/no-such-binary")
	requireCode(t, r, 127)
	requireOneLineError(t, r, "/target/no-such-binary: command not found")
}

func TestAttachToASocketThatIsNotAnAgent(t *testing.T) {
	s := env(t)

	r := s.run(t, nil, "attach", "--agent", "unix://"+s.containerd.Socket, "web", "--", "true")
	requireCode(t, r, exitFailure)
	requireOneLineError(t, r, "is not a nodedebug agent socket", "check --agent")
}

func TestAgentShutdownEndsSessionsWithAMessage(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	agent := s.startPathAgent(t, "stopping")
	_, wait := s.startSession(t, agent.endpoint, pod.Spec.Name, "echo ready; sleep 60")

	_ = agent.process.cmd.Process.Signal(syscall.SIGTERM)

	r := wait()
	requireCode(t, r, exitFailure)
	requireOneLineError(t, r, "agent on this node is shutting down")
	s.requireNoToolContainers(t, 10*time.Second)
}

func TestTargetStoppingDuringSessionIsReported(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	_, wait := s.startSession(t, s.agentEndpoint(), pod.Spec.Name, "echo ready; sleep 60")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.containerd.StopPod(ctx, pod); err != nil {
		t.Fatal(err)
	}

	r := wait()
	requireOneLineError(t, r, "the target container e2e/"+pod.Spec.Name+"/app stopped during the session")
}

func TestAttachWithNothingBeforeTheDash(t *testing.T) {
	s := env(t)

	r := s.attach(t, nil, "--", "true")
	requireCode(t, r, 2)
	requireOneLineError(t, r, "needs a pod before --")
}

func TestAgentRestartRemovesLeftoverFIFOs(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	agent := s.startPathAgent(t, "fifos")
	session, wait := s.startSession(t, agent.endpoint, pod.Spec.Name, "echo ready; sleep 60")

	_ = agent.process.cmd.Process.Kill()
	<-agent.process.exited
	_ = session.Process.Kill()
	wait()

	fifoDir := filepath.Join(s.dir, "state-fifos", "fifo")
	if entries, _ := os.ReadDir(fifoDir); len(entries) == 0 {
		t.Fatal("the killed agent left no FIFOs; this test needs some left behind")
	}

	s.startPathAgent(t, "fifos")
	if entries, _ := os.ReadDir(fifoDir); len(entries) != 0 {
		t.Fatalf("FIFO folders left after the restart: %d", len(entries))
	}
	s.requireNoToolContainers(t, 10*time.Second)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCopyOntoSingleFileBindMountWritesInPlace(t *testing.T) {
	s := env(t)
	dir := t.TempDir()
	rw, ro := filepath.Join(dir, "rw.conf"), filepath.Join(dir, "ro.conf")
	for _, f := range []string{rw, ro} {
		if err := os.WriteFile(f, []byte("old=1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inode := inodeOf(t, rw)

	app := s.targetContainer("app")
	app.Mounts = []harness.Mount{
		{HostPath: rw, ContainerPath: "/etc/rw.conf"},
		{HostPath: ro, ContainerPath: "/etc/ro.conf", ReadOnly: true},
	}
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{app}})
	local := filepath.Join(dir, "new.conf")
	if err := os.WriteFile(local, []byte("new=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// A rename over a mount point would detach the mount from the app.
	r := s.cp(t, nil, local, pod.Spec.Name+":/etc/rw.conf")
	requireCode(t, r, 0)
	if data, _ := os.ReadFile(rw); string(data) != "new=2\n" || inodeOf(t, rw) != inode {
		t.Fatalf("the node's file was not written in place: %q", data)
	}
	mountinfo := `grep -c ' /etc/rw.conf ' "$(dirname "$(readlink /target)")/mountinfo"`
	if mounts := s.sh(t, pod.Spec.Name, mountinfo); mounts != "1\n" {
		t.Fatalf("the target's mount of /etc/rw.conf: %q mount lines, want 1", mounts)
	}

	// A read-only mount refuses, and stays mounted and unchanged.
	r = s.cp(t, nil, local, pod.Spec.Name+":/etc/ro.conf")
	requireCode(t, r, exitFailure)
	if data, _ := os.ReadFile(ro); string(data) != "old=1\n" {
		t.Fatalf("the read-only file changed: %q", data)
	}
	if got := s.sh(t, pod.Spec.Name, "cat /target/etc/ro.conf"); got != "old=1\n" {
		t.Fatalf("the target sees %q in its read-only file; the mount was detached", got)
	}
}

func TestReattachWithPipedStdinLeavesTheSessionRunning(t *testing.T) {
	s := env(t)
	a := s.startPolicyAgent(t, "{}\n")
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := a.attach(t, nil, "--detach", pod.Spec.Name)
	requireCode(t, r, 0)
	if !strings.Contains(string(r.stdout), "--agent "+a.endpoint) {
		t.Fatalf("the reattach hint must name the agent it used: %s", r)
	}
	id := strings.Fields(string(r.stdout))[1]
	a.waitClient(t, id, "detached")

	// A script feeds one command and ends its stdin: the client leaves,
	// the shell stays.
	r = a.attach(t, strings.NewReader("echo still-here\n"), "--session", id)
	requireCode(t, r, 0)
	if !strings.Contains(string(r.stderr), "detached from session "+id) {
		t.Fatalf("want a note that the client detached, got %s", r)
	}
	a.waitClient(t, id, "detached")

	requireCode(t, s.run(t, nil, "kill", "--agent", a.endpoint, id), 0)
	s.requireNoToolContainers(t, 10*time.Second)
}

func TestEditorWithQuotedArgumentsRunsLikeGitRunsIt(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	var stdout, stderr strings.Builder
	cmd := exec.Command(s.binary, "edit", "--agent", s.agentEndpoint(), "-n", podNamespace,
		pod.Spec.Name+":/etc/app.conf")
	cmd.Env = append(os.Environ(), `EDITOR=sed -i 's/level=info/level=two words/'`, "TMPDIR="+t.TempDir())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("edit with a quoted $EDITOR: %v\n%s", err, stderr.String())
	}

	if got := s.sh(t, pod.Spec.Name, "cat /target/etc/app.conf"); got != "greeting=hello\nlevel=two words\n" {
		t.Fatalf("app.conf after the edit = %q", got)
	}
}

func TestCRIPathClientKilledLeavesNoZombieInTarget(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	targetPid := s.targetPid(t, pod.ContainerIDs["app"])
	agent := s.startPathAgent(t, "cri-zombie", "--path", "cri")

	session, wait := s.startSession(t, agent.endpoint, pod.Spec.Name, "sleep 300 & sleep 301 & echo ready; wait")
	_ = session.Process.Kill()
	wait()

	// The session's sleeps must be reaped by the tool init, not left as
	// zombies of the target's pid 1, which never reaps them.
	requireOnlyTarget(t, targetPid, 15*time.Second)
	s.requireNoCRIToolContainers(t, 15*time.Second)
}
