package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodedebug/nodedebug/test/images"
)

// TestHarnessRunsDistrolessPodAndCrashLoop drives the whole harness: start
// containerd, import the images, run a nonroot two-container pod with a
// shared pid namespace, crash a container twice, and leave nothing behind.
func TestHarnessRunsDistrolessPodAndCrashLoop(t *testing.T) {
	binary := RequireContainerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	started := time.Now()
	imgs, err := BuildImages(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("build images: %v", err)
	}
	t.Logf("built images in %v", time.Since(started).Round(time.Millisecond))

	c := Start(t, ctx, Options{Binary: binary})
	t.Logf("containerd %s (major %d) on %s", c.Version, c.Major, c.Socket)

	started = time.Now()
	if err := c.ImportImages(ctx, imgs); err != nil {
		t.Fatalf("import images: %v", err)
	}
	t.Logf("imported images in %v", time.Since(started).Round(time.Millisecond))

	pod := runTargetPod(t, ctx, c)
	checkCrictlSeesPod(t, ctx, c, pod)
	checkToolboxRuns(t, ctx, c, pod)
	checkCrashLoop(t, ctx, c, pod)
	checkStopLeavesNothing(t, c)
}

func runTargetPod(t *testing.T, ctx context.Context, c *Containerd) *Pod {
	t.Helper()
	nonroot := int64(images.NonRootUID)
	spec := PodSpec{
		Namespace:             "default",
		Name:                  "target",
		ShareProcessNamespace: true,
		Containers: []ContainerSpec{
			{Name: "app", Image: images.TargetRef, User: &nonroot},
			{Name: "sidecar", Image: images.TargetRef, User: &nonroot},
		},
	}

	started := time.Now()
	pod, err := c.RunPod(ctx, spec)
	if err != nil {
		t.Fatalf("run pod: %v", err)
	}
	t.Logf("pod with 2 containers running in %v", time.Since(started).Round(time.Millisecond))

	for name, id := range pod.ContainerIDs {
		status, err := c.ContainerStatus(ctx, id)
		if err != nil {
			t.Fatalf("container %s: %v", name, err)
		}
		if status.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s state = %v, want RUNNING", name, status.GetState())
		}
		if got := status.GetLabels()[LabelContainerName]; got != name {
			t.Errorf("container %s label %s = %q", name, LabelContainerName, got)
		}
	}

	appNS := checkProcess(t, ctx, c, pod.ContainerIDs["app"], images.NonRootUID)
	sidecarNS := checkProcess(t, ctx, c, pod.ContainerIDs["sidecar"], images.NonRootUID)
	if appNS != sidecarNS {
		t.Errorf("pid namespaces differ with ShareProcessNamespace: %s vs %s", appNS, sidecarNS)
	}
	return pod
}

func checkCrictlSeesPod(t *testing.T, ctx context.Context, c *Containerd, pod *Pod) {
	t.Helper()
	out, err := c.Crictl(ctx, "pods", "-q")
	if errors.Is(err, ErrNoCrictl) {
		t.Log("crictl not on PATH; skipping the crictl check")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), pod.SandboxID) {
		t.Errorf("crictl pods -q = %q, want %s", out, pod.SandboxID)
	}
}

// checkToolboxRuns starts the product-facing toolbox image with a busybox
// applet, so a broken applet link or missing PATH shows up here first.
func checkToolboxRuns(t *testing.T, ctx context.Context, c *Containerd, pod *Pod) {
	t.Helper()
	toolbox := ContainerSpec{Name: "toolbox", Image: images.ToolboxRef, Command: []string{"sleep", "600"}}
	id, err := c.AddContainer(ctx, pod, toolbox)
	if err != nil {
		t.Fatalf("start toolbox: %v", err)
	}
	state, err := c.ContainerState(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("toolbox state = %v, want RUNNING", state)
	}
}

func checkCrashLoop(t *testing.T, ctx context.Context, c *Containerd, pod *Pod) {
	t.Helper()
	crasher := ContainerSpec{Name: "crasher", Image: images.TargetRef, Args: []string{"-crash"}}
	first, err := c.AddContainer(ctx, pod, crasher)
	if err != nil {
		t.Fatalf("add crashing container: %v", err)
	}
	waitExitCode(t, ctx, c, first, images.TargetCrashExitCode)

	second, err := c.RestartContainer(ctx, pod, "crasher")
	if err != nil {
		t.Fatalf("restart crashing container: %v", err)
	}
	status := waitExitCode(t, ctx, c, second, images.TargetCrashExitCode)
	if status.GetMetadata().GetAttempt() != 1 {
		t.Errorf("restarted attempt = %d, want 1", status.GetMetadata().GetAttempt())
	}

	ctrs, err := c.ListContainers(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrs) != 5 {
		t.Errorf("pod has %d containers, want 5 (app, sidecar, toolbox, 2 crasher attempts)", len(ctrs))
	}
}

func waitExitCode(t *testing.T, ctx context.Context, c *Containerd, id string, want int32) *runtimeapi.ContainerStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	status, err := c.WaitContainerExited(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if status.GetExitCode() != want {
		t.Errorf("container %s exit code = %d, want %d", id, status.GetExitCode(), want)
	}
	return status
}

func checkStopLeavesNothing(t *testing.T, c *Containerd) {
	t.Helper()
	t.Log(c.LogProblems())
	started := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(started).Round(time.Millisecond))

	mounts, err := c.MountsLeft()
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) > 0 {
		t.Errorf("mounts left after stop: %v", mounts)
	}

	procs, err := listProcs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if c.ownsShim(p) || p.pid == c.cmd.Process.Pid && isAlive(p.pid) {
			t.Errorf("process left after stop: %d %v", p.pid, p.args)
		}
	}

	for _, path := range []string{c.Dir, c.sockDir} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s still exists after stop (err %v)", path, err)
		}
	}
	if slices.ContainsFunc(c.netns, func(p string) bool { _, err := os.Stat(p); return err == nil }) {
		t.Errorf("network namespaces left after stop: %v", c.netns)
	}
}

// checkProcess reads the container's pid from verbose CRI status and checks
// its uid and pid namespace from /proc.
func checkProcess(t *testing.T, ctx context.Context, c *Containerd, id string, wantUID int) string {
	t.Helper()
	resp, err := c.RuntimeClient().ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{
		ContainerId: id,
		Verbose:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("no pid in verbose status of %s: %v", id, err)
	}

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if fields := strings.Fields(line); len(fields) > 1 && fields[0] == "Uid:" {
			if fields[1] != strconv.Itoa(wantUID) {
				t.Errorf("container %s runs as uid %s, want %d", id, fields[1], wantUID)
			}
		}
	}

	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", info.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// TestStopSweepsAfterDaemonDies guards the cleanup path that cannot rely on
// CRI: the daemon is killed with pods running, and Stop must still kill the
// shims and containers and unmount everything.
func TestStopSweepsAfterDaemonDies(t *testing.T) {
	binary := RequireContainerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	imgs, err := BuildImages(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("build images: %v", err)
	}
	c := Start(t, ctx, Options{Binary: binary})
	if err := c.ImportImages(ctx, imgs); err != nil {
		t.Fatalf("import images: %v", err)
	}
	pod := runTargetPod(t, ctx, c)
	t.Logf("pod %s running; killing containerd pid %d", pod.SandboxID, c.cmd.Process.Pid)

	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	mounts, err := c.MountsLeft()
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		t.Fatal("no mounts before stop; the sweep would be untested")
	}

	checkStopLeavesNothing(t, c)
}
