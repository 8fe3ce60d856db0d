package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/nodedebug/nodedebug/api"
)

// controlTimeout bounds the short calls that list and kill sessions.
const controlTimeout = 10 * time.Second

// SessionsOptions lists the live sessions on the node's agent.
type SessionsOptions struct {
	Agent string
	Now   func() time.Time
	Streams
}

// Run prints one line per live session.
func (o *SessionsOptions) Run(ctx context.Context) error {
	client, closeConn, err := dialAgent(o.Agent)
	if err != nil {
		return err
	}
	defer closeConn()

	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()

	resp, err := client.ListSessions(ctx, &api.ListSessionsRequest{})
	if err != nil {
		return agentError(o.Agent, err)
	}
	return printSessions(o.Out, resp.Sessions, o.Now())
}

// printSessions writes the table of `nodedebug sessions`.
func printSessions(out io.Writer, sessions []*api.SessionInfo, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SESSION\tUSER\tTARGET\tAGE\tPROFILE\tCLIENT\tCOMMAND")
	for _, s := range sessions {
		age := now.Sub(time.Unix(s.StartedUnix, 0)).Truncate(time.Second)
		fmt.Fprintf(w, "%s\tuid %d (pid %d)\t%s\t%s\t%s\t%s\t%s\n", s.Id, s.Uid, s.Pid,
			targetString(s.Target), age, s.Profile, clientState(s), commandString(s.Command))
	}
	return w.Flush()
}

func clientState(s *api.SessionInfo) string {
	if s.Attached {
		return "attached"
	}
	return "detached"
}

func targetString(t *api.Target) string {
	s := t.GetNamespace() + "/" + t.GetPod()
	if t.GetContainer() != "" {
		s += "/" + t.GetContainer()
	}
	return s
}

func commandString(command []string) string {
	if len(command) == 0 {
		return "(image default)"
	}
	// Quoted, so that a command's control characters cannot drive the
	// terminal of whoever lists the sessions.
	quoted := make([]string, len(command))
	for i, arg := range command {
		quoted[i] = quoteIfNeeded(arg)
	}
	return strings.Join(quoted, " ")
}

func quoteIfNeeded(arg string) string {
	plain := func(r rune) bool { return unicode.IsGraphic(r) && !unicode.IsSpace(r) && r != '"' }
	if arg != "" && strings.IndexFunc(arg, func(r rune) bool { return !plain(r) }) < 0 {
		return arg
	}
	return strconv.QuoteToGraphic(arg)
}

// KillOptions ends one live session.
type KillOptions struct {
	Agent   string
	Session string
	Streams
}

// Run asks the agent to end the session and remove its tool container.
func (o *KillOptions) Run(ctx context.Context) error {
	client, closeConn, err := dialAgent(o.Agent)
	if err != nil {
		return err
	}
	defer closeConn()

	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()

	if _, err := client.KillSession(ctx, &api.KillSessionRequest{Id: o.Session}); err != nil {
		return agentError(o.Agent, err)
	}
	fmt.Fprintf(o.Out, "session %s killed\n", o.Session)
	return nil
}

func newSessionsCommand(streams Streams) *cobra.Command {
	o := &SessionsOptions{Streams: streams, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List the live debug sessions on this node's agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Agent, "agent", DefaultAgentEndpoint, "agent socket")
	return cmd
}

func newKillCommand(streams Streams) *cobra.Command {
	o := &KillOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "kill SESSION",
		Short: "End a live debug session and remove its tool container",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("kill takes one session id; nodedebug sessions lists them")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Session = args[0]
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Agent, "agent", DefaultAgentEndpoint, "agent socket")
	return cmd
}
