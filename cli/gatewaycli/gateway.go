// Package gatewaycli is the command line of nodedebug-gateway. It is apart
// from cli, and the gateway a binary apart from nodedebug, because the
// gateway's Kubernetes libraries (client-go's clientset, k8s.io/apiserver)
// would almost double the resident memory of the agent and of the init of
// every tool container, which are the nodedebug binary.
package gatewaycli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/nodedebug/nodedebug/cli"
	"github.com/nodedebug/nodedebug/gateway"
)

// Run executes the gateway's command line and returns the exit status.
func Run(ctx context.Context, args []string, streams cli.Streams) int {
	cmd := newGatewayCommand(streams)
	cmd.SetArgs(args)

	err := cmd.ExecuteContext(ctx)
	code := cli.ExitCode(ctx, err)
	if err != nil {
		fmt.Fprintf(streams.ErrOut, "nodedebug-gateway: %v\n", err)
	}
	return code
}

// GatewayOptions is how `nodedebug gateway` was started.
type GatewayOptions struct {
	Config   gateway.Config
	LogLevel string

	cli.Streams
}

// Run serves the aggregated API until ctx ends.
func (o *GatewayOptions) Run(ctx context.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return cli.UsageErrorf("--log-level %q: use debug, info, warn or error", o.LogLevel)
	}
	o.Config.Log = slog.New(slog.NewJSONHandler(o.ErrOut, &slog.HandlerOptions{Level: level}))

	g, err := gateway.New(ctx, o.Config)
	if err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	return g.Serve(ctx)
}

func newGatewayCommand(streams cli.Streams) *cobra.Command {
	o := &GatewayOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "nodedebug-gateway",
		Short: "Serve the nodedebug.io aggregated API and forward sessions to the agents",
		Args:  cobra.NoArgs,
		// Errors are printed once, by Run.
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}

	c := &o.Config
	flags := cmd.Flags()
	flags.StringVar(&c.Listen, "listen", ":8443", "HTTPS address the API server proxies to")
	flags.StringVar(&c.TLSCertFile, "tls-cert", "/etc/nodedebug/tls/tls.crt", "serving certificate (also the client certificate for the agents)")
	flags.StringVar(&c.TLSKeyFile, "tls-key", "/etc/nodedebug/tls/tls.key", "serving key")
	flags.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig of the gateway's own identity (default: in-cluster)")
	flags.StringVar(&c.Agents.Namespace, "agent-namespace", "nodedebug", "namespace of the agent pods")
	flags.StringVar(&c.Agents.Selector, "agent-selector", "app.kubernetes.io/name=nodedebug-agent", "label selector of the agent pods")
	flags.IntVar(&c.Agents.Port, "agent-port", 9443, "the agents' mutual-TLS port")
	flags.StringVar(&c.Agents.CAFile, "agent-ca", "/etc/nodedebug/tls/ca.crt", "CA that signed the agents' certificates")
	flags.StringVar(&c.Agents.CertFile, "agent-client-cert", "/etc/nodedebug/tls/tls.crt", "the gateway's client certificate for the agents")
	flags.StringVar(&c.Agents.KeyFile, "agent-client-key", "/etc/nodedebug/tls/tls.key", "key of --agent-client-cert")
	flags.StringVar(&c.Agents.ServerName, "agent-server-name", "nodedebug-agent", "name in the agents' certificate")
	flags.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}
