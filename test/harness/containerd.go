// Package harness starts a private containerd for end-to-end tests and
// benchmarks, imports the test images into it and runs pods through CRI the
// way kubelet does. Everything lives under one folder that Stop removes.
package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodedebug/nodedebug/test/images"
)

// CNIBinDir is where Debian's containernetworking-plugins puts the plugins.
const CNIBinDir = "/usr/lib/cni"

// startTimeout bounds how long the daemon may take to answer CRI Version.
const startTimeout = 60 * time.Second

// Options configure StartContainerd.
type Options struct {
	// Dir is the folder for everything: config, root, state, logs. Stop
	// removes it.
	Dir string
	// Binary is the containerd to run; containerd-shim-runc-v2 must sit next
	// to it. Default: containerd on PATH.
	Binary string
	// Runtime is the OCI runtime binary (runc or crun). Default: runc on PATH.
	Runtime string
	// SandboxImage is the pause image ref. Default: images.PauseRef.
	SandboxImage string
	// Logger gets progress messages. Default: slog.Default().
	Logger *slog.Logger
}

// Containerd is a running private containerd daemon.
type Containerd struct {
	// Socket is the daemon's gRPC unix socket (containerd and CRI APIs).
	Socket string
	// Dir is the harness root folder.
	Dir string
	// Version is the CRI runtime version, e.g. "1.6.20~ds1" or "v2.4.2".
	Version string
	// Major is the containerd major version from `containerd --version`.
	Major int
	// LogPath is the daemon's log file.
	LogPath string
	// CgroupParent holds every pod cgroup this harness creates.
	CgroupParent string
	// Bridge is the CNI bridge interface on the host.
	Bridge string

	log      *slog.Logger
	cmd      *exec.Cmd
	exited   chan struct{}
	sockDir  string
	conn     *grpc.ClientConn
	runtime  runtimeapi.RuntimeServiceClient
	image    runtimeapi.ImageServiceClient
	mu       sync.Mutex
	netns    []string
	stopOnce sync.Once
	stopErr  error
}

// StartContainerd writes a config for the daemon's version, starts it and
// waits until CRI answers. On error the returned *Containerd (if not nil)
// still needs Stop to clean up what was created.
func StartContainerd(ctx context.Context, opts Options) (*Containerd, error) {
	opts, err := opts.complete()
	if err != nil {
		return nil, err
	}

	c := &Containerd{
		Dir:     opts.Dir,
		LogPath: filepath.Join(opts.Dir, "containerd.log"),
		log:     opts.Logger,
	}
	started := time.Now()
	if err := c.start(ctx, opts); err != nil {
		return c, err
	}

	c.log.Info("containerd ready", "socket", c.Socket, "version", c.Version,
		"took", time.Since(started).Round(time.Millisecond))
	return c, nil
}

func (o Options) complete() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("harness options: Dir is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SandboxImage == "" {
		o.SandboxImage = images.PauseRef
	}

	var err error
	if o.Binary, err = lookPath(o.Binary, "containerd"); err != nil {
		return o, err
	}
	if o.Runtime, err = lookPath(o.Runtime, "runc"); err != nil {
		return o, err
	}
	return o, nil
}

// lookPath resolves name (or fallback when empty) to an absolute path.
func lookPath(name, fallback string) (string, error) {
	if name == "" {
		name = fallback
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", name, err)
	}
	return filepath.Abs(path)
}

func (c *Containerd) start(ctx context.Context, opts Options) error {
	out, err := exec.CommandContext(ctx, opts.Binary, "--version").Output()
	if err != nil {
		return fmt.Errorf("run %s --version: %w", opts.Binary, err)
	}
	if c.Major, err = majorVersion(string(out)); err != nil {
		return fmt.Errorf("version of %s: %w", opts.Binary, err)
	}

	config, err := c.writeConfig(opts)
	if err != nil {
		return err
	}

	if err := c.spawn(opts.Binary, config); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// writeConfig lays out the folders, the CNI config and config.toml.
func (c *Containerd) writeConfig(opts Options) (string, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create harness dir %s: %w", c.Dir, err)
	}
	if err := c.pickSocketDir(); err != nil {
		return "", err
	}

	n := pickNetwork()
	c.Bridge = fmt.Sprintf("ndbr%d", n)
	c.CgroupParent = fmt.Sprintf("/nodedebug-test-%d-%d", os.Getpid(), n)
	cfg := daemonConfig{
		Root:         filepath.Join(c.Dir, "root"),
		State:        filepath.Join(c.Dir, "state"),
		Socket:       c.Socket,
		ShimSockets:  filepath.Join(c.sockDir, "s"),
		Opt:          filepath.Join(c.Dir, "opt"),
		RuncRoot:     filepath.Join(c.Dir, "runc"),
		Runtime:      opts.Runtime,
		SandboxImage: opts.SandboxImage,
		CNIBinDir:    CNIBinDir,
		CNIConfDir:   filepath.Join(c.Dir, "cni"),
	}
	if err := writeCNI(cfg.CNIConfDir, n, c.Bridge, c.Dir); err != nil {
		return "", err
	}

	data, err := renderConfig(c.Major, cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, "config.toml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// pickSocketDir puts the sockets in a short folder of the system temp dir:
// containerd 2.x refuses a shim socket_dir longer than 42 bytes, and test
// folders are often deeper than that.
func (c *Containerd) pickSocketDir() error {
	dir, err := os.MkdirTemp("", "ndc")
	if err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	c.sockDir = dir
	c.Socket = filepath.Join(dir, "containerd.sock")
	return nil
}

// pickNetwork picks N for bridge ndbrN and subnet 10.244.N.0/24, avoiding
// bridges that already exist on the host.
func pickNetwork() int {
	for range 20 {
		n := 10 + rand.IntN(240)
		if _, err := net.InterfaceByName(fmt.Sprintf("ndbr%d", n)); err != nil {
			return n
		}
	}
	return 10 + rand.IntN(240)
}

func writeCNI(confDir string, n int, bridge, dir string) error {
	data, err := cniConfList(cniNetwork{
		Name:    fmt.Sprintf("nodedebug-test-%d", n),
		Bridge:  bridge,
		Subnet:  fmt.Sprintf("10.244.%d.0/24", n),
		DataDir: filepath.Join(dir, "cni-ipam"),
	})
	if err != nil {
		return fmt.Errorf("render cni config: %w", err)
	}

	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return fmt.Errorf("create cni conf dir %s: %w", confDir, err)
	}
	path := filepath.Join(confDir, "10-nodedebug.conflist")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// spawn starts the daemon in its own process group with its own binary
// folder first on PATH, so it starts the shim of its own version.
func (c *Containerd) spawn(binary, config string) error {
	logFile, err := os.Create(c.LogPath)
	if err != nil {
		return fmt.Errorf("create log %s: %w", c.LogPath, err)
	}
	defer logFile.Close()

	path := filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH")
	cmd := exec.Command(binary, "--config", config, "--log-level", "debug")
	cmd.Env = append(withoutPath(os.Environ()), "PATH="+path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", binary, err)
	}

	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() {
		// Wait only reaps; Stop reads the result from the closed channel.
		_ = cmd.Wait()
		close(c.exited)
	}()
	return nil
}

func withoutPath(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return out
}

// waitReady polls CRI Version until it answers, the daemon dies, or the
// start timeout passes.
func (c *Containerd) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	conn, err := grpc.NewClient("unix://"+c.Socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", c.Socket, err)
	}
	c.conn = conn
	c.runtime = runtimeapi.NewRuntimeServiceClient(conn)
	c.image = runtimeapi.NewImageServiceClient(conn)

	for {
		version, err := c.tryVersion(ctx)
		if err == nil {
			c.Version = version
			return nil
		}
		// The daemon serves but has no CRI: the plugin failed to load and
		// will not come back, so do not wait out the timeout.
		if status.Code(err) == codes.Unimplemented {
			return fmt.Errorf("CRI plugin not loaded on %s: %w\n%s", c.Socket, err, c.logTail())
		}

		select {
		case <-c.exited:
			return fmt.Errorf("containerd exited during start: %w\n%s", err, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("wait for CRI on %s: %w (last error: %v)\n%s",
				c.Socket, ctx.Err(), err, c.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Containerd) tryVersion(ctx context.Context) (string, error) {
	if _, err := os.Stat(c.Socket); err != nil {
		return "", err
	}

	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetRuntimeVersion(), nil
}

// logTail returns the last lines of the daemon log for error messages.
func (c *Containerd) logTail() string {
	data, err := os.ReadFile(c.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "containerd log tail:\n" + strings.Join(lines, "\n")
}

// LogProblems returns the warning and error lines of the daemon log, for
// test output after a failure. It reads nothing once Stop removed Dir.
func (c *Containerd) LogProblems() string {
	data, err := os.ReadFile(c.LogPath)
	if err != nil {
		return ""
	}

	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "level=warning") || strings.Contains(line, "level=error") {
			lines = append(lines, line)
		}
	}
	return fmt.Sprintf("containerd log %s: %d warnings/errors\n%s",
		c.LogPath, len(lines), strings.Join(lines, "\n"))
}

// RuntimeClient is the CRI runtime service of this daemon.
func (c *Containerd) RuntimeClient() runtimeapi.RuntimeServiceClient { return c.runtime }

// ImageClient is the CRI image service of this daemon.
func (c *Containerd) ImageClient() runtimeapi.ImageServiceClient { return c.image }
