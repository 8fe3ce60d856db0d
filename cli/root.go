// Package cli turns nodedebug's command line into options structs and runs
// them. It is the only package that knows about cobra.
package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nodedebug/nodedebug/agent/toolinit"
)

// DefaultAgentEndpoint is where the node-local agent listens.
const DefaultAgentEndpoint = "unix:///run/nodedebug/agent.sock"

// Run executes the command line and returns the process's exit status.
func Run(ctx context.Context, args []string, streams Streams) int {
	root := newRootCommand(streams)
	root.SetArgs(args)

	err := root.ExecuteContext(ctx)
	if shouldReport(ctx, err) {
		fmt.Fprintf(streams.ErrOut, "nodedebug: %v\n", err)
	}
	return ExitCode(ctx, err)
}

// shouldReport tells nodedebug's own failures, which get one line on
// stderr, from a remote command's exit status, which is passed on silently
// whatever its value: stderr belongs to the remote command then.
func shouldReport(ctx context.Context, err error) bool {
	var exitErr *ExitError
	return err != nil && !errors.As(err, &exitErr) && ctx.Err() == nil
}

func newRootCommand(streams Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "nodedebug",
		Short: "Debug any container on a Kubernetes node, without ephemeral containers",
		// Errors are printed once, by Run, with the exit status they map to.
		SilenceErrors: true,
		SilenceUsage:  true,
		// An unknown command is a bad command line, like an unknown flag.
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q; see nodedebug --help", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError("%v", err)
	})

	root.AddCommand(
		newAttachCommand(streams),
		newCopyCommand(streams),
		newEditCommand(streams),
		newAgentCommand(streams),
		newPingCommand(streams),
		newVersionCommand(streams),
		newInitCommand(streams),
		newNsenterInitCommand(streams),
		newPauseCommand(),
		newSessionsCommand(streams),
		newKillCommand(streams),
	)
	return root
}

func newAttachCommand(streams Streams) *cobra.Command {
	o := &AttachOptions{Streams: streams, Kube: &KubeFlags{}}
	cmd := &cobra.Command{
		Use:   "attach [-n NAMESPACE] [-i] [-t] POD[/CONTAINER] [-- COMMAND [ARG...]]",
		Short: "Open a tool container in a target container's namespaces",
		Long: `Start a tool container that joins the target container's pid namespace
(and by default its net, ipc and uts namespaces), with the target's root
filesystem at /target. With no command, runs the toolbox's shell.

Exit status: the remote command's own; 126 or 127 when the command cannot
run or is not found; 128+N when it died of signal N; 125 when nodedebug
itself failed (agent unreachable, target not found or not running);
2 for a bad command line.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ShareSet = cmd.Flags().Changed("share")
			o.AgentSet = cmd.Flags().Changed("agent")
			if err := o.Complete(args, cmd.ArgsLenAtDash()); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}

	flags := cmd.Flags()
	flags.StringVarP(&o.Namespace, "namespace", "n", "",
		"namespace of the pod (default: the kubeconfig context's, or default)")
	flags.StringVarP(&o.Container, "container", "c", "", "container to debug (instead of POD/CONTAINER)")
	flags.BoolVarP(&o.Stdin, "stdin", "i", false, "pass stdin to the tool process")
	flags.BoolVarP(&o.TTY, "tty", "t", false, "allocate a terminal for the tool process")
	flags.StringVar(&o.Image, "image", "", "tool image present in the agent's containerd namespace (default: the toolbox)")
	flags.StringVar(&o.Profile, "profile", "", "security profile of the tool container (default: general)")
	flags.StringSliceVar(&o.Share, "share", nil, "target namespaces to join besides pid: net, ipc, uts (default: all three)")
	flags.BoolVar(&o.Exited, "exited", false, "inspect the filesystem of an exited container")
	flags.IntVar(&o.Attempt, "attempt", -1, "with --exited, the restart attempt to inspect (default: the newest)")
	flags.StringVar(&o.Agent, "agent", DefaultAgentEndpoint,
		"attach on this node through the agent socket, not through the Kubernetes API server")
	flags.StringVar(&o.Reason, "reason", "", "why you are debugging; recorded in the agent's audit log")
	flags.StringVar(&o.CustomFile, "custom", "", "partial OCI process spec (JSON or YAML) laid over the profile")
	flags.BoolVar(&o.Detach, "detach", false, "start the session, print its id and leave it running")
	flags.StringVar(&o.Session, "session", "", "reattach to a session started with --detach")
	o.Kube.AddFlags(flags)

	cmd.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		o.AgentSet = c.Flags().Changed("agent")
		return o.completeTargets(c, args, toComplete)
	}
	return cmd
}

// newInitCommand runs inside tool containers as their first process; it is
// not meant for users.
func newInitCommand(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "init -- COMMAND [ARG...]",
		Hidden: true,
		// The command's own flags must reach it untouched.
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 && strings.HasPrefix(args[0], toolinit.WinsizeFlag) {
				if err := toolinit.ApplyWinsize(strings.TrimPrefix(args[0], toolinit.WinsizeFlag)); err != nil {
					fmt.Fprintf(streams.ErrOut, "nodedebug init: %v\n", err)
				}
				args = args[1:]
			}
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if code := toolinit.Run(args, streams.ErrOut); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}

// newVersionCommand prints what this binary was built from, so someone on
// call can tell which nodedebug they have.
func newVersionCommand(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and build of this binary",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			fmt.Fprintln(streams.Out, versionString())
			return nil
		},
	}
}

func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "nodedebug (no build information)"
	}

	version := "nodedebug " + info.Main.Version
	for _, setting := range info.Settings {
		switch setting.Key {
		case "vcs.revision", "vcs.time", "vcs.modified":
			version += " " + setting.Key + "=" + setting.Value
		}
	}
	return version + " " + info.GoVersion
}

// options is a command's plain options struct, run the way every command
// runs: fill it from the arguments, check the flag combinations, act.
type options interface {
	Complete(args []string) error
	Validate() error
	Run(ctx context.Context) error
}

func completeValidateRun(o options) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}
