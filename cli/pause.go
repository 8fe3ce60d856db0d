package cli

import "github.com/spf13/cobra"

// newPauseCommand is the main process of tool containers on the CRI path:
// it keeps the container alive while sessions run in it through CRI Exec,
// and ends on SIGTERM.
func newPauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "pause",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			<-cmd.Context().Done()
			return nil
		},
	}
}
