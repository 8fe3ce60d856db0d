package cli

import (
	"github.com/spf13/cobra"

	"github.com/nodedebug/nodedebug/agent/toolinit"
	"github.com/nodedebug/nodedebug/nsenter"
)

// exitSetup is the status of a child that could not set up its root; the
// agent has the reason from the report pipe.
const exitSetup = 125

// newNsenterInitCommand runs in the child the nsenter constructor forked
// into the target's namespaces; the agent starts it, users never do.
func newNsenterInitCommand(streams Streams) *cobra.Command {
	var opts nsenter.ChildOptions
	cmd := &cobra.Command{
		Use:    "nsenter-init [flags] -- COMMAND [ARG...]",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := nsenter.Prepare(opts); err != nil {
				return &ExitError{Code: exitSetup}
			}
			if code := toolinit.Run(args, streams.ErrOut); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}

	flags := cmd.Flags()
	flags.IntVar(&opts.TargetPid, "target-pid", 0, "the target's pid in its pid namespace")
	flags.StringVar(&opts.Cwd, "cwd", "/", "working folder of the command")
	return cmd
}
