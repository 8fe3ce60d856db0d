// Package agent is the per-node daemon: it resolves targets through CRI,
// runs tool containers next to them with containerd, and streams their I/O
// to clients over a gRPC unix socket.
package agent

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/nodedebug/nodedebug/cri"
)

// ErrNotContainerd means the CRI runtime is not containerd, which the
// native tool-container path needs.
var ErrNotContainerd = errors.New("runtime is not containerd")

// cleanupTimeout bounds removing one tool container; cleanup runs on its own
// context so it still happens after the client has gone.
const cleanupTimeout = 15 * time.Second

// Config is how the agent was started.
type Config struct {
	// Socket is where the agent serves; it names the agent, so that an
	// agent only ever removes the tool containers of its predecessors on
	// the same socket, never those of another agent.
	Socket string

	// RuntimeEndpoint is the CRI socket, "unix:///run/containerd/containerd.sock";
	// empty finds it among the usual paths under DetectRoot ("/").
	RuntimeEndpoint string
	DetectRoot      string

	// Path is how tool processes start: auto, containerd, cri or nsenter.
	Path string

	// ToolboxTar is an image tar to import at start; empty imports nothing.
	ToolboxTar string

	// ToolboxImage is the default image of tool containers.
	ToolboxImage string

	// StateDir holds what the runtime must reach by path: the FIFOs of
	// tool processes' stdio and the tool init binary. When the agent runs
	// in a container, it must be a host folder mounted at the same path.
	StateDir string

	// OCIRuntime is the OCI runtime binary for tool containers ("runc",
	// "crun", or a path); empty means containerd's default.
	OCIRuntime string

	// Policy is what the node operator allows; see DefaultPolicy.
	Policy Policy

	// AuditLog is the file audit records are appended to; AuditStdout
	// gets a copy of each, when set.
	AuditLog    string
	AuditStdout io.Writer

	// TLS, when set, also serves the gateway over mutual TLS.
	TLS *TLSListen

	Log *slog.Logger
}

// DefaultAgentNamespace is the Kubernetes namespace of the DaemonSet,
// denied to sessions by default.
const DefaultAgentNamespace = "nodedebug"

// DefaultAuditLog is where the agent appends its audit records.
const DefaultAuditLog = "/var/log/nodedebug/audit.log"

// DefaultToolboxImage is the reference the toolbox tar carries.
const DefaultToolboxImage = "nodedebug.local/toolbox:latest"

// DefaultStateDir is the agent's own run folder.
const DefaultStateDir = "/run/nodedebug"

// Agent serves debug sessions on one node.
type Agent struct {
	cfg        Config
	log        *slog.Logger
	cri        *cri.Client
	containerd *containerd.Client
	images     *imageCache
	launcher   launcher

	policy   Policy
	registry *registry
	audit    *auditLog
	metrics  *metrics

	// lifetime ends when the agent stops serving; detached sessions run
	// on it rather than on a client's stream.
	lifetime context.Context

	// sessions counts live sessions so shutdown can wait for their cleanup.
	sessions sync.WaitGroup

	// stopping is closed when the agent shuts down; sessions then end
	// with a message that says so.
	stopping     chan struct{}
	stoppingOnce sync.Once
}

// New connects to the runtime, removes what a previous agent left behind
// and imports the toolbox.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.ToolboxImage == "" {
		cfg.ToolboxImage = DefaultToolboxImage
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}

	init, err := installInit(cfg.StateDir)
	if err != nil {
		return nil, err
	}

	if cfg.Policy.MaxConcurrentSessions == 0 {
		// A zero policy was never configured: take the defaults.
		cfg.Policy = DefaultPolicy(DefaultAgentNamespace)
	}
	if cfg.AuditLog == "" {
		cfg.AuditLog = DefaultAuditLog
	}
	audit, err := openAuditLog(cfg.AuditLog, cfg.AuditStdout)
	if err != nil {
		return nil, err
	}

	criClient, err := dialRuntime(ctx, cfg)
	if err != nil {
		audit.Close()
		return nil, err
	}

	a := &Agent{cfg: cfg, log: cfg.Log, cri: criClient, policy: cfg.Policy,
		registry: newRegistry(), audit: audit, metrics: newMetrics(), stopping: make(chan struct{})}
	path, err := ChoosePath(criClient.RuntimeName(), cfg.Path)
	if err != nil {
		a.Close()
		return nil, err
	}

	a.launcher, err = a.newLauncher(ctx, path, init)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("set up the %s path: %w", path, err)
	}
	a.log.InfoContext(ctx, "runtime ready", "endpoint", criClient.Endpoint,
		"runtime", criClient.RuntimeName(), "version", criClient.Version.GetRuntimeVersion(),
		"path", a.launcher.name())
	return a, nil
}

func (a *Agent) connectContainerd(ctx context.Context) error {
	name := a.cri.RuntimeName()
	if name != "containerd" {
		return fmt.Errorf("the CRI runtime at %s is %s %s: %w; only containerd is supported so far",
			a.cri.Endpoint, name, a.cri.Version.GetRuntimeVersion(), ErrNotContainerd)
	}

	client, err := containerd.New(a.cri.Endpoint, containerd.WithDefaultNamespace(Namespace))
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", a.cri.Endpoint, err)
	}

	a.containerd = client
	a.images = newImageCache(client)
	a.log.InfoContext(ctx, "connected to runtime", "endpoint", a.cri.Endpoint,
		"runtime", name, "version", a.cri.Version.GetRuntimeVersion())
	return nil
}

func (a *Agent) prepare(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, Namespace)
	if err := a.removeLeftovers(ctx); err != nil {
		return err
	}

	if a.cfg.ToolboxTar == "" {
		return nil
	}
	name, err := a.images.importTar(ctx, a.cfg.ToolboxTar)
	if err != nil {
		return err
	}

	a.cfg.ToolboxImage = name
	a.log.InfoContext(ctx, "toolbox ready", "image", name, "tar", a.cfg.ToolboxTar)
	return nil
}

// removeLeftovers deletes tool containers that a previous agent did not get
// to remove, such as after it was killed.
func (a *Agent) removeLeftovers(ctx context.Context) error {
	filter := fmt.Sprintf("labels.%q==%q", labelAgent, a.cfg.Socket)
	leftovers, err := a.containerd.Containers(ctx, filter)
	if err != nil {
		return fmt.Errorf("list leftover tool containers: %w", err)
	}

	for _, c := range leftovers {
		a.log.InfoContext(ctx, "removing leftover tool container", "container", c.ID())
		if err := removeContainer(ctx, c); err != nil {
			return fmt.Errorf("remove leftover tool container %s: %w", c.ID(), err)
		}
		removeFIFOs(a.fifoDir(), c.ID())
	}
	return nil
}

// fifoDir holds one folder of stdio FIFOs per live session.
func (a *Agent) fifoDir() string {
	return filepath.Join(a.cfg.StateDir, "fifo")
}

// removeFIFOs deletes a session's FIFO folder; the I/O layer removes its
// own files when a session ends normally, but not after the agent died.
func removeFIFOs(fifoDir, toolID string) {
	_ = os.RemoveAll(filepath.Join(fifoDir, toolID))
}

// ErrStopping ends sessions when the agent shuts down.
var ErrStopping = errors.New("the nodedebug agent on this node is shutting down; the session was ended and its tool container removed")

// stop ends every session.
func (a *Agent) stop() {
	a.stoppingOnce.Do(func() { close(a.stopping) })
}

// Wait blocks until every session has cleaned up.
func (a *Agent) Wait() {
	a.sessions.Wait()
}

// Close releases the runtime connections.
func (a *Agent) Close() error {
	var errs []error
	if a.containerd != nil {
		errs = append(errs, a.containerd.Close())
	}
	errs = append(errs, a.cri.Close(), a.audit.Close())
	return errors.Join(errs...)
}

// installInit copies the agent's own binary into the state folder, from
// where runc can bind-mount it into tool containers as their init: the
// runtime cannot mount a file it sees only through another mount
// namespace, such as the agent container's.
func installInit(stateDir string) (string, error) {
	if err := checkStatic(); err != nil {
		return "", err
	}

	dir := filepath.Join(stateDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}

	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", fmt.Errorf("open the agent's own binary: %w", err)
	}
	defer self.Close()

	dest := filepath.Join(dir, "nodedebug")
	if err := writeFileAtomic(dest, self, 0o755); err != nil {
		return "", fmt.Errorf("install tool init at %s: %w", dest, err)
	}
	return dest, nil
}

// writeFileAtomic replaces path with what r holds, so that a reader sees
// the old file or the new one, never a half-written one.
func writeFileAtomic(path string, r io.Reader, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())

	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// checkStatic makes sure the agent's binary can run in any tool image,
// which it must to serve as their init.
func checkStatic() error {
	exe, err := elf.Open("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("read the agent's own binary: %w", err)
	}
	defer exe.Close()

	for _, prog := range exe.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("the agent binary is dynamically linked, but it must run inside tool images as their init: build it static (make build)")
		}
	}
	return nil
}
