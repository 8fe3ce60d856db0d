package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/nodedebug/nodedebug/agent"
	"github.com/nodedebug/nodedebug/cri"
)

// AgentOptions is how `nodedebug agent` was started.
type AgentOptions struct {
	RuntimeEndpoint string
	DetectRoot      string
	Path            string
	Listen          string
	ToolboxTar      string
	ToolboxImage    string
	StateDir        string
	OCIRuntime      string
	LogLevel        string
	Config          string
	AuditLog        string
	AuditStdout     bool
	MetricsListen   string
	TLS             agent.TLSListen

	Streams
}

// Run serves until ctx ends (SIGTERM or SIGINT).
func (o *AgentOptions) Run(ctx context.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return usageError("--log-level %q: use debug, info, warn or error", o.LogLevel)
	}
	log := slog.New(slog.NewJSONHandler(o.ErrOut, &slog.HandlerOptions{Level: level}))

	listen, err := cri.SocketPath(o.Listen)
	if err != nil {
		return usageError("--listen: %v", err)
	}

	policy, err := o.policy()
	if err != nil {
		return err
	}
	var auditStdout io.Writer
	if o.AuditStdout {
		auditStdout = o.Out
	}

	// The lock comes first: an agent that cannot own the socket must not
	// touch the tool containers of the agent that does.
	release, err := agent.LockSocket(listen)
	if err != nil {
		return err
	}
	defer release()

	a, err := agent.New(ctx, agent.Config{
		Socket:          listen,
		RuntimeEndpoint: o.RuntimeEndpoint,
		DetectRoot:      o.DetectRoot,
		Path:            o.Path,
		ToolboxTar:      o.ToolboxTar,
		ToolboxImage:    o.ToolboxImage,
		StateDir:        o.StateDir,
		OCIRuntime:      o.OCIRuntime,
		Policy:          policy,
		AuditLog:        o.AuditLog,
		AuditStdout:     auditStdout,
		TLS:             o.tlsListen(),
		Log:             log,
	})
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	defer a.Close()

	if err := o.serveMetrics(ctx, a); err != nil {
		return err
	}

	return a.Serve(ctx, listen)
}

// policy reads --config over the defaults; the agent's own namespace comes
// from POD_NAMESPACE, which the DaemonSet sets.
func (o *AgentOptions) policy() (agent.Policy, error) {
	namespace := os.Getenv("POD_NAMESPACE")
	if namespace == "" {
		namespace = agent.DefaultAgentNamespace
	}
	if o.Config == "" {
		return agent.DefaultPolicy(namespace), nil
	}
	return agent.LoadPolicy(o.Config, namespace)
}

func (o *AgentOptions) serveMetrics(ctx context.Context, a *agent.Agent) error {
	if o.MetricsListen == "" {
		return nil
	}
	addr, err := agent.MetricsAddress(o.MetricsListen)
	if err != nil {
		return usageError("--metrics-listen: %v", err)
	}
	return a.ServeMetrics(ctx, addr)
}

func newAgentCommand(streams Streams) *cobra.Command {
	o := &AgentOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the per-node debug agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}

	flags := cmd.Flags()
	flags.StringVar(&o.RuntimeEndpoint, "runtime-endpoint", "",
		"CRI socket of the node's runtime (default: the first usual socket that answers)")
	flags.StringVar(&o.Path, "path", agent.PathAuto,
		"how tool processes start: auto, containerd, cri, nsenter (auto: containerd on containerd, else cri)")
	flags.StringVar(&o.DetectRoot, "detect-root", "/", "folder the usual CRI socket paths are looked up under")
	_ = flags.MarkHidden("detect-root")
	flags.StringVar(&o.Listen, "listen", DefaultAgentEndpoint, "unix socket to serve clients on")
	flags.StringVar(&o.ToolboxTar, "toolbox-tar", "", "image tar to import as the toolbox at start")
	flags.StringVar(&o.ToolboxImage, "toolbox-image", agent.DefaultToolboxImage, "default tool image")
	flags.StringVar(&o.StateDir, "state-dir", agent.DefaultStateDir,
		"folder the runtime reaches by path (stdio FIFOs, tool init); a host folder at the same path")
	flags.StringVar(&o.OCIRuntime, "oci-runtime", "", "OCI runtime binary for tool containers (default: containerd's)")
	flags.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	flags.StringVar(&o.Config, "config", "", "policy file (YAML or JSON); see the README for its fields and defaults")
	flags.StringVar(&o.AuditLog, "audit-log", agent.DefaultAuditLog, "file the audit records are appended to")
	flags.BoolVar(&o.AuditStdout, "audit-stdout", false, "also write every audit record to stdout")
	flags.StringVar(&o.MetricsListen, "metrics-listen", "",
		"serve Prometheus metrics on HOST:PORT; :PORT means 127.0.0.1:PORT (default: off)")
	addAgentTLSFlags(flags, &o.TLS)
	return cmd
}
