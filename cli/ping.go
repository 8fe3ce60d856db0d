package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodedebug/nodedebug/api"
)

// pingTimeout keeps a readiness probe from hanging on a stuck agent.
const pingTimeout = 5 * time.Second

// PingOptions asks an agent whether it serves, and on which runtime.
type PingOptions struct {
	Agent string
	Streams
}

// Run prints the agent's runtime, or fails when it does not answer.
func (o *PingOptions) Run(ctx context.Context) error {
	client, closeConn, err := dialAgent(o.Agent)
	if err != nil {
		return err
	}
	defer closeConn()

	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()

	resp, err := client.Runtime(ctx, &api.RuntimeRequest{})
	if err != nil {
		return agentError(o.Agent, err)
	}

	fmt.Fprintf(o.Out, "agent %s: %s %s at %s, tool containers through %s\n",
		o.Agent, resp.RuntimeName, resp.RuntimeVersion, resp.Endpoint, resp.Path)
	return nil
}

func newPingCommand(streams Streams) *cobra.Command {
	o := &PingOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "ping",
		Short: "Check that the node's agent answers, and show its runtime",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Agent, "agent", DefaultAgentEndpoint, "agent socket")
	return cmd
}
