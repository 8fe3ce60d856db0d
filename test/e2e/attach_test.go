package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodedebug/nodedebug/test/harness"
)

// appConf is /etc/app.conf in the target image.
const appConf = "greeting=hello\nlevel=info\n"

func dialUnix(path string) (net.Conn, error) {
	return net.Dial("unix", path)
}

func requireCode(t *testing.T, r result, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("want exit %d, got %s", want, r)
	}
}

func TestAttachPsShowsTargetProcess(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := s.attach(t, nil, pod.Spec.Name+"/app", "--", "ps", "-o", "pid,user,args")
	requireCode(t, r, 0)

	if !bytes.Contains(r.stdout, []byte("/app")) {
		t.Fatalf("ps in the tool container does not list the target's binary:\n%s", r.stdout)
	}
	if bytes.Contains(r.stdout, []byte("/pause")) {
		t.Fatalf("the target has its own pid namespace, yet ps shows the pause process:\n%s", r.stdout)
	}
}

func TestAttachReadsFileOfNonRootTarget(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := s.attach(t, nil, pod.Spec.Name, "--", "cat", "/target/etc/app.conf")
	requireCode(t, r, 0)
	if string(r.stdout) != appConf {
		t.Fatalf("cat /target/etc/app.conf = %q, want %q", r.stdout, appConf)
	}
}

func TestAttachReadOnlyRootTarget(t *testing.T) {
	s := env(t)
	app := s.targetContainer("app")
	app.ReadOnlyRootfs = true
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{app}})

	r := s.attach(t, nil, pod.Spec.Name, "--", "cat", "/target/etc/app.conf")
	requireCode(t, r, 0)
	if string(r.stdout) != appConf {
		t.Fatalf("cat /target/etc/app.conf = %q", r.stdout)
	}
}

func TestAttachSharedPidNamespaceFindsTargetNotPause(t *testing.T) {
	s := env(t)
	side := s.targetContainer("side")
	side.Args = []string{"-config", "/etc/passwd"}
	pod := s.runPod(t, harness.PodSpec{
		ShareProcessNamespace: true,
		Containers:            []harness.ContainerSpec{s.targetContainer("app"), side},
	})

	// In a shared pid namespace pid 1 is the pause process: /target must
	// lead to the app's root, which has /etc/app.conf, not pause's.
	r := s.attach(t, nil, pod.Spec.Name+"/app", "--", "sh", "-c", "readlink /target; cat /target/etc/app.conf; ps -o pid,args")
	requireCode(t, r, 0)

	lines := strings.SplitN(string(r.stdout), "\n", 2)
	if lines[0] == "/proc/1/root" {
		t.Fatalf("/target points at pid 1, the pause process: %s", r.stdout)
	}
	if !strings.Contains(lines[1], appConf) || !strings.Contains(lines[1], "/pause") {
		t.Fatalf("want the app's config and the pod's pause process in ps:\n%s", r.stdout)
	}
}

func TestAttachExitStatus(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	tests := []struct {
		name    string
		command []string
		want    int
	}{
		{name: "success", command: []string{"true"}, want: 0},
		{name: "exit 5", command: []string{"sh", "-c", "exit 5"}, want: 5},
		{name: "killed by SIGKILL", command: []string{"sh", "-c", "kill -9 $$"}, want: 137},
		{name: "killed by SIGTERM", command: []string{"sh", "-c", "kill -15 $$"}, want: 143},
		{name: "command not found", command: []string{"no-such-command"}, want: 127},
		{name: "not executable", command: []string{"/etc/passwd"}, want: 126},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.attach(t, nil, append([]string{pod.Spec.Name, "--"}, tt.command...)...)
			requireCode(t, r, tt.want)
		})
	}
}

func TestAttachOutputIsByteExactWithoutTTY(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := s.attach(t, nil, pod.Spec.Name, "--", "sh", "-c", `printf 'a\000b\r\n\377'; printf 'e\001' >&2`)
	requireCode(t, r, 0)
	if string(r.stdout) != "a\x00b\r\n\xff" || string(r.stderr) != "e\x01" {
		t.Fatalf("stdout %q stderr %q: streams mixed or altered", r.stdout, r.stderr)
	}
}

func TestAttachStdinRoundTrip10MB(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	input := make([]byte, 10<<20)
	if _, err := io.ReadFull(rand.Reader, input); err != nil {
		t.Fatal(err)
	}

	r := s.attach(t, bytes.NewReader(input), "-i", pod.Spec.Name, "--", "cat")
	requireCode(t, r, 0)
	if sha256.Sum256(r.stdout) != sha256.Sum256(input) {
		t.Fatalf("10 MB through cat came back as %d bytes with another sha256", len(r.stdout))
	}
}

func TestAttachStdinEOFReachesRemoteProcess(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	r := s.attach(t, strings.NewReader("one\ntwo\n"), "-i", pod.Spec.Name, "--", "wc", "-l")
	requireCode(t, r, 0)
	if strings.TrimSpace(string(r.stdout)) != "2" {
		t.Fatalf("wc -l = %q, want 2", r.stdout)
	}
}

func TestAttachTTYReportsClientSize(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	requireTTYSizeAndExit(t, s, s.agentEndpoint(), pod)
}

// requireTTYSizeAndExit checks that a -it session gets the client's
// terminal size and brings the exit status back through the terminal.
func requireTTYSizeAndExit(t *testing.T, s *suite, endpoint string, pod *harness.Pod) {
	t.Helper()
	cmd := exec.Command(s.binary, "attach", "--agent", endpoint, "-n", podNamespace,
		"-it", pod.Spec.Name, "--", "sh", "-c", "stty size; tty; exit 3")
	terminal, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 91})
	if err != nil {
		t.Fatal(err)
	}
	defer terminal.Close()

	output, _ := io.ReadAll(terminal)
	_ = cmd.Wait()

	if !bytes.Contains(output, []byte("33 91")) || !bytes.Contains(output, []byte("/dev/pts/")) {
		t.Fatalf("want the remote terminal to be 33x91, got %q", output)
	}
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("exit code through a terminal = %d, want 3", code)
	}
}

func TestAttachTTYForwardsResize(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})

	cmd := exec.Command(s.binary, "attach", "--agent", s.agentEndpoint(), "-n", podNamespace,
		"-it", pod.Spec.Name, "--", "sh")
	terminal, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 20, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer terminal.Close()

	screen := newScreen(terminal)
	fmt.Fprint(terminal, "stty size\r")
	screen.waitFor(t, "20 80")

	if err := pty.Setsize(terminal, &pty.Winsize{Rows: 50, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	// The resize travels asynchronously; ask until the shell sees it.
	deadline := time.Now().Add(10 * time.Second)
	for !screen.contains("50 132") && time.Now().Before(deadline) {
		fmt.Fprint(terminal, "stty size\r")
		time.Sleep(200 * time.Millisecond)
	}
	screen.waitFor(t, "50 132")

	fmt.Fprint(terminal, "exit 7\r")
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Fatalf("exit code = %d, want 7", code)
	}
}

func TestAttachCleanupAfterClientSIGKILL(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	targetPid := s.targetPid(t, pod.ContainerIDs["app"])

	cmd, wait := s.startSession(t, s.agentEndpoint(), pod.Spec.Name, "sleep 300 & echo ready; exec sleep 301")

	if n := len(processesInPidNamespace(t, targetPid)); n < 3 {
		t.Fatalf("want the target and two sleeps in the target's pid namespace, got %d processes", n)
	}
	_ = cmd.Process.Kill()
	wait()

	s.requireNoToolContainers(t, 10*time.Second)
	requireOnlyTarget(t, targetPid, 10*time.Second)
}

func TestAgentRestartRemovesLeftovers(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	targetPid := s.targetPid(t, pod.ContainerIDs["app"])

	_, wait := s.startSession(t, s.agentEndpoint(), pod.Spec.Name, "echo ready; exec sleep 300")

	// A killed agent cleans nothing up; the next one must.
	_ = s.agent.cmd.Process.Kill()
	<-s.agent.exited
	wait()
	if len(s.toolContainers(t)) == 0 {
		t.Fatal("the tool container vanished with the agent; this test needs it left behind")
	}

	agent, err := s.startAgent(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.agent = agent

	s.requireNoToolContainers(t, 10*time.Second)
	requireOnlyTarget(t, targetPid, 10*time.Second)
}

// targetPid reads the host pid of a running container from CRI.
func (s *suite) targetPid(t *testing.T, containerID string) int {
	t.Helper()
	resp, err := s.containerd.RuntimeClient().ContainerStatus(context.Background(),
		&runtimeapi.ContainerStatusRequest{ContainerId: containerID, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}

	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("no pid in status of %s: %v", containerID, err)
	}
	return info.Pid
}

// processesInPidNamespace lists the command lines of every process that
// shares pid's pid namespace.
func processesInPidNamespace(t *testing.T, pid int) []string {
	t.Helper()
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}

	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/pid"))
		if err != nil || ns != want {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		found = append(found, strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}

// requireOnlyTarget waits until the target's own process is the only one
// in its pid namespace.
func requireOnlyTarget(t *testing.T, targetPid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		procs := processesInPidNamespace(t, targetPid)
		if len(procs) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left in the target's pid namespace after %s: %q", timeout, procs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitForLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	lines := make(chan string)
	go func() {
		scanner := bufio.NewScanner(r)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
	}()

	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if line == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within 30s", want)
		}
	}
}

// screen collects what a terminal shows.
type screen struct {
	buf  bytes.Buffer
	data chan []byte
}

func newScreen(r io.Reader) *screen {
	s := &screen{data: make(chan []byte, 64)}
	go func() {
		chunk := make([]byte, 4096)
		for {
			n, err := r.Read(chunk)
			if n > 0 {
				s.data <- append([]byte(nil), chunk[:n]...)
			}
			if err != nil {
				close(s.data)
				return
			}
		}
	}()
	return s
}

func (s *screen) pump(wait time.Duration) {
	select {
	case chunk, ok := <-s.data:
		if ok {
			s.buf.Write(chunk)
		}
	case <-time.After(wait):
	}
}

func (s *screen) contains(text string) bool {
	s.pump(50 * time.Millisecond)
	return bytes.Contains(s.buf.Bytes(), []byte(text))
}

func (s *screen) waitFor(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !bytes.Contains(s.buf.Bytes(), []byte(text)) {
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; it shows %q", text, s.buf.String())
		}
		s.pump(100 * time.Millisecond)
	}
}
