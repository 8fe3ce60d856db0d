package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodedebug/nodedebug/test/harness"
)

// shareableNamespaces are the namespaces --share chooses among, in the
// order the checks read them.
var shareableNamespaces = []string{"net", "ipc", "uts"}

// TestNsenterPathNeverSharesTheNodesNamespaces guards H3: a namespace the
// tool does not join must be a fresh one of its own, never the node's,
// and a joined one must be the target's.
func TestNsenterPathNeverSharesTheNodesNamespaces(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	targetPid := s.targetPid(t, pod.ContainerIDs["app"])
	a := s.startPathAgent(t, "nsenter-share", "--path", "nsenter")

	tests := []struct {
		name   string
		flags  []string
		joined []string
	}{
		{"default share", nil, shareableNamespaces},
		{"share net", []string{"--share", "net"}, []string{"net"}},
		{"share ipc and uts", []string{"--share", "ipc,uts"}, []string{"ipc", "uts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := "for ns in " + strings.Join(shareableNamespaces, " ") +
				"; do readlink /proc/self/ns/$ns; done"
			args := slices.Concat(tt.flags, []string{pod.Spec.Name, "--", "sh", "-c", script})
			r := s.attachVia(t, a, nil, args...)
			requireCode(t, r, 0)

			seen := strings.Fields(string(r.stdout))
			if len(seen) != len(shareableNamespaces) {
				t.Fatalf("readlink printed %q, want one line per namespace", r.stdout)
			}
			for i, ns := range shareableNamespaces {
				requireNamespace(t, ns, seen[i], targetPid, slices.Contains(tt.joined, ns))
			}
		})
	}
}

// requireNamespace checks one namespace the tool saw: the target's when
// joined, otherwise neither the target's nor the node's. The node's are
// the test's own, which the agent inherits: /proc/1/ns may be closed to
// root in a sandbox.
func requireNamespace(t *testing.T, ns, seen string, targetPid int, joined bool) {
	t.Helper()
	node := readNamespace(t, os.Getpid(), ns)
	target := readNamespace(t, targetPid, ns)

	switch {
	case joined && seen != target:
		t.Errorf("%s namespace = %s, want the target's %s", ns, seen, target)
	case !joined && seen == node:
		t.Errorf("%s namespace = %s, the node's own; want a fresh one", ns, seen)
	case !joined && seen == target:
		t.Errorf("%s namespace = %s, the target's, though not shared", ns, seen)
	}
}

func readNamespace(t *testing.T, pid int, ns string) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// TestNsenterPathChildNeverHasTheNodesRoot guards H2: the child the
// constructor forks into the target's pid namespace is visible there, so
// from its first instant its root must be the toolbox's, not the node's.
// The test starts the re-executed binary as the agent does, with the
// hidden hook that stops the child right after the fork, and looks at
// the child's root and working folder through /proc while it is stopped.
func TestNsenterPathChildNeverHasTheNodesRoot(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	targetPid := s.targetPid(t, pod.ContainerIDs["app"])
	a := s.startPathAgent(t, "nsenter-root", "--path", "nsenter")
	rootfs := filepath.Join(s.dir, "state-"+a.name, "toolbox", "rootfs")

	child := startPausedChild(t, s.binary, targetPid, rootfs)
	defer child.finish(t)

	child.waitStopped(t, func() {
		requireNotNodeRoot(t, child.pid)
	})
	if got, want := readNamespace(t, child.pid, "pid"), readNamespace(t, targetPid, "pid"); got != want {
		t.Fatalf("stopped child is in pid namespace %s, want the target's %s", got, want)
	}
	requireNotNodeRoot(t, child.pid)
}

// pausedChild is `nodedebug nsenter-init` started the way the agent
// starts it, with the test hook that stops the forked child.
type pausedChild struct {
	cmd    *exec.Cmd
	report *bufio.Scanner
	start  *os.File
	pid    int
}

func startPausedChild(t *testing.T, binary string, targetPid int, rootfs string) *pausedChild {
	t.Helper()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	startR, startW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reportR.Close(); startW.Close() })

	c := &pausedChild{report: bufio.NewScanner(reportR), start: startW}
	c.cmd = exec.Command(binary, "nsenter-init", "--target-pid", strconv.Itoa(pidInNamespace(t, targetPid)),
		"--cwd", "/", "--", "true")
	c.cmd.Env = append(os.Environ(),
		"NODEDEBUG_NSENTER_PID="+strconv.Itoa(targetPid),
		"NODEDEBUG_NSENTER_SHARE=net,ipc,uts",
		"NODEDEBUG_NSENTER_ROOTFS="+rootfs,
		"NODEDEBUG_NSENTER_SCRATCH="+t.TempDir(),
		"NODEDEBUG_NSENTER_TEST_STOP=1")
	c.cmd.ExtraFiles = []*os.File{reportW, startR}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reportW.Close()
	startR.Close()
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })

	line := c.nextLine(t)
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "pid "))
	if err != nil || !strings.HasPrefix(line, "pid ") {
		t.Fatalf("first report line = %q, want the child's pid", line)
	}
	c.pid = pid
	return c
}

func (c *pausedChild) nextLine(t *testing.T) string {
	t.Helper()
	if !c.report.Scan() {
		t.Fatalf("report pipe ended early: %v", c.report.Err())
	}
	return c.report.Text()
}

// waitStopped runs check until the child is stopped by the test hook.
func (c *pausedChild) waitStopped(t *testing.T, check func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !processStopped(t, c.pid) {
		check()
		if time.Now().After(deadline) {
			t.Fatalf("child %d did not stop after the fork", c.pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// finish lets the child go on and checks that the session still runs.
func (c *pausedChild) finish(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(c.pid, syscall.SIGCONT); err != nil {
		t.Errorf("continue child %d: %v", c.pid, err)
	}
	if line := c.nextLine(t); line != "ready" {
		t.Fatalf("report after the stop = %q, want ready", line)
	}
	if _, err := c.start.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("nsenter-init -- true: %v", err)
	}
}

func processStopped(t *testing.T, pid int) bool {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The state follows the command name, which is in parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] == "T"
}

// requireNotNodeRoot fails if pid's root or working folder is the node's
// root folder.
func requireNotNodeRoot(t *testing.T, pid int) {
	t.Helper()
	var node syscall.Stat_t
	if err := syscall.Stat("/", &node); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"root", "cwd"} {
		var st syscall.Stat_t
		path := fmt.Sprintf("/proc/%d/%s/", pid, link)
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatalf("stat %s: %v", path, err)
		}
		if st.Dev == node.Dev && st.Ino == node.Ino {
			t.Fatalf("%s is the node's root folder", path)
		}
	}
}

// pidInNamespace is hostPid's pid in its own pid namespace.
func pidInNamespace(t *testing.T, hostPid int) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hostPid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if fields, ok := strings.CutPrefix(line, "NSpid:"); ok {
			ids := strings.Fields(fields)
			pid, err := strconv.Atoi(ids[len(ids)-1])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no NSpid in /proc/%d/status", hostPid)
	return 0
}

// TestNsenterPathDevHoldsOnlyTheMinimalNodes: the tool's /dev holds the
// listed nodes and links, not the node's whole /dev (no disks).
func TestNsenterPathDevHoldsOnlyTheMinimalNodes(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	a := s.startPathAgent(t, "nsenter-dev", "--path", "nsenter")

	r := s.attachVia(t, a, nil, pod.Spec.Name, "--", "sh", "-c",
		"ls /dev /dev/pts && echo x > /dev/null && head -c 4 /dev/zero | wc -c")
	requireCode(t, r, 0)
	want := "/dev:\nfd\nfull\nnull\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n\n/dev/pts:\n4\n"
	if got := string(r.stdout); got != want {
		t.Fatalf("/dev in the tool:\n%s\nwant:\n%s", got, want)
	}
}
