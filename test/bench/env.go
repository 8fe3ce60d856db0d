package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodedebug/nodedebug/test/harness"
)

// podNamespace holds the benchmark's pods.
const podNamespace = "bench"

// env is one private containerd, two agents and one target pod, shared by
// every measurement. Both agents use the same containerd and target: agent
// starts tools through containerd, nsAgent through the nsenter path.
type env struct {
	cfg        config
	dir        string
	binary     string
	images     harness.Images
	containerd *harness.Containerd
	agent      *agentProcess
	nsAgent    *agentProcess
	target     *harness.Pod
	// targetPid is the host pid of the target container's process.
	targetPid int
	log       *slog.Logger
}

func newEnv(ctx context.Context, cfg config, log *slog.Logger) (*env, error) {
	dir, err := os.MkdirTemp("", "nodedebug-bench-")
	if err != nil {
		return nil, fmt.Errorf("create bench dir: %w", err)
	}
	e := &env{cfg: cfg, dir: dir, log: log}
	if err := e.start(ctx); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func (e *env) start(ctx context.Context) error {
	var err error
	if e.binary, err = buildNodedebug(ctx, e.dir); err != nil {
		return err
	}
	if e.images, err = harness.BuildImages(ctx, filepath.Join(e.dir, "images")); err != nil {
		return fmt.Errorf("build images: %w", err)
	}

	e.containerd, err = harness.StartContainerd(ctx, harness.Options{
		Dir:     filepath.Join(e.dir, "containerd"),
		Binary:  e.cfg.containerd,
		Runtime: os.Getenv(harness.EnvRuntime),
		Logger:  e.log,
	})
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	if err := e.containerd.ImportImages(ctx, e.images); err != nil {
		return err
	}

	if err := e.startTarget(ctx); err != nil {
		return err
	}
	if e.agent, err = e.startAgent(ctx, "containerd"); err != nil {
		return err
	}
	e.nsAgent, err = e.startAgent(ctx, "nsenter")
	return err
}

// buildNodedebug builds the binary from the module this program runs in,
// statically, as it ships.
func buildNodedebug(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("find the nodedebug module (run from the repo): %v", err)
	}

	binary := filepath.Join(dir, "nodedebug")
	// Static with cgo, like make build: the nsenter path needs its C
	// constructor.
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "netgo,osusergo",
		"-ldflags", `-extldflags "-static"`, "-o", binary, ".")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build nodedebug: %w\n%s", err, out)
	}
	return binary, nil
}

// startTarget runs the pod every session attaches to. Its one container
// runs the busybox toolbox image, because crictl exec, the peer, can only
// run commands the target image has.
func (e *env) startTarget(ctx context.Context) error {
	pod, err := e.containerd.RunPod(ctx, harness.PodSpec{
		Namespace: podNamespace,
		Name:      "target",
		Containers: []harness.ContainerSpec{{
			Name:    "app",
			Image:   e.images.Toolbox.Ref,
			Command: []string{"/bin/sleep", "2000000000"},
		}},
	})
	if err != nil {
		return fmt.Errorf("run target pod: %w", err)
	}
	e.target = pod

	status, err := e.containerd.RuntimeClient().ContainerStatus(ctx, containerStatusRequest(e.targetID()))
	if err != nil {
		return fmt.Errorf("status of target container %s: %w", e.targetID(), err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(status.GetInfo()["info"]), &info); err != nil || info.Pid <= 0 {
		return fmt.Errorf("no pid for target container %s: %v", e.targetID(), err)
	}
	e.targetPid = info.Pid
	return nil
}

func (e *env) targetID() string {
	return e.target.ContainerIDs["app"]
}

func (e *env) stop() {
	for _, a := range []*agentProcess{e.agent, e.nsAgent} {
		if a != nil {
			a.stop()
		}
	}
	if e.containerd != nil {
		if err := e.containerd.Stop(); err != nil {
			e.log.Error("stop containerd", "error", err)
		}
	}
	os.RemoveAll(e.dir)
}

// agentProcess is a running `nodedebug agent` logging JSON at debug level
// to a file, which the benchmark reads timings from.
type agentProcess struct {
	// path is the agent's --path: how it starts tool processes.
	path    string
	cmd     *exec.Cmd
	logPath string
	socket  string
	exited  chan struct{}
}

// startAgent runs an agent with --path path, with its own socket, log and
// state folder.
func (e *env) startAgent(ctx context.Context, path string) (*agentProcess, error) {
	a := &agentProcess{
		path:    path,
		logPath: filepath.Join(e.dir, "agent-"+path+".log"),
		socket:  filepath.Join(e.dir, "agent-"+path+".sock"),
		exited:  make(chan struct{}),
	}
	logFile, err := os.Create(a.logPath)
	if err != nil {
		return nil, fmt.Errorf("create agent log: %w", err)
	}
	defer logFile.Close()

	a.cmd = exec.Command(e.binary, "agent",
		"--runtime-endpoint", "unix://"+e.containerd.Socket,
		"--listen", a.socket,
		"--toolbox-tar", e.images.Toolbox.Path,
		"--state-dir", filepath.Join(e.dir, "state-"+path),
		"--path", path,
		// Not the default /var/log/nodedebug: nothing of the run on the host.
		"--audit-log", filepath.Join(e.dir, "audit-"+path+".log"),
		"--log-level", "debug")
	a.cmd.Stdout, a.cmd.Stderr = logFile, logFile
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s agent: %w", path, err)
	}
	go func() {
		_ = a.cmd.Wait()
		close(a.exited)
	}()

	if err := a.waitListening(ctx); err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

func (a *agentProcess) waitListening(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	for {
		if conn, err := net.Dial("unix", a.socket); err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-a.exited:
			log, _ := os.ReadFile(a.logPath)
			return fmt.Errorf("agent exited before listening; its log:\n%s", log)
		case <-ctx.Done():
			return fmt.Errorf("wait for agent socket %s: %w", a.socket, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *agentProcess) pid() int {
	return a.cmd.Process.Pid
}

func (a *agentProcess) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// logOffset is where the agent log ends now; timingsSince reads from it.
func (a *agentProcess) logOffset() int64 {
	info, err := os.Stat(a.logPath)
	if err != nil {
		return 0
	}
	return info.Size()
}

// timing is one session's "attach timing" debug line: step name to
// milliseconds.
type timing map[string]float64

// timingsSince returns the timing lines the agent logged after offset.
func (a *agentProcess) timingsSince(offset int64) ([]timing, error) {
	f, err := os.Open(a.logPath)
	if err != nil {
		return nil, fmt.Errorf("open agent log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seek agent log: %w", err)
	}

	var out []timing
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		if t, ok := parseTiming(scanner.Bytes()); ok {
			out = append(out, t)
		}
	}
	return out, scanner.Err()
}

func parseTiming(line []byte) (timing, bool) {
	var fields map[string]any
	if json.Unmarshal(line, &fields) != nil || fields["msg"] != "attach timing" {
		return nil, false
	}

	t := timing{}
	for k, v := range fields {
		if n, ok := v.(float64); ok && strings.HasSuffix(k, "_ms") {
			t[strings.TrimSuffix(k, "_ms")] = n
		}
	}
	return t, true
}

// errFailed marks a run whose command did not exit as expected.
var errFailed = errors.New("run failed")
