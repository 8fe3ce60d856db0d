package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/nodedebug/nodedebug/api"
)

// EditOptions is everything `nodedebug edit` needs, free of cobra.
type EditOptions struct {
	Namespace string
	Container string
	Signal    string
	Agent     string
	// Reason goes to the agent's audit log; its policy may require it.
	Reason string
	// Editor is the command line of the editor; the file is its last
	// argument. Complete fills it from $EDITOR, or vi.
	Editor string

	// Filled by Complete from POD:PATH.
	Pod  string
	Path string

	Streams
}

// Complete reads POD:PATH and picks the editor.
func (o *EditOptions) Complete(args []string) error {
	if len(args) != 1 {
		return usageError("edit needs one POD:PATH, such as nodedebug edit web:/etc/app.conf")
	}
	remote, ok := parseRemote(args[0])
	if !ok {
		return usageError("%q names no pod: write POD:PATH", args[0])
	}

	if remote.namespace != "" {
		o.Namespace = remote.namespace
	}
	pod, container, err := splitTarget(remote.pod, o.Container)
	if err != nil {
		return err
	}
	o.Pod, o.Container, o.Path = pod, container, remote.path

	if o.Editor == "" {
		o.Editor = cmpOr(os.Getenv("EDITOR"), "vi")
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Validate checks the flag combinations.
func (o *EditOptions) Validate() error {
	switch {
	case o.Namespace == "":
		return usageError("the namespace is empty; pass -n NAMESPACE")
	case !path.IsAbs(o.Path):
		return usageError("the path in the pod must be absolute, such as %s:/%s", o.Pod, o.Path)
	case o.Signal != "" && !validSignal(o.Signal):
		return usageError("--signal %q: use a name such as HUP or USR1, or a number", o.Signal)
	case len(strings.Fields(o.Editor)) == 0:
		return usageError("$EDITOR is blank; set it to an editor command")
	}
	return nil
}

func validSignal(name string) bool {
	name = strings.TrimPrefix(strings.ToUpper(name), "SIG")
	if unix.SignalNum("SIG"+name) != 0 {
		return true
	}
	var n int
	_, err := fmt.Sscanf(name, "%d", &n)
	return err == nil && n > 0 && n < 65
}

func (o *EditOptions) target() *api.Target {
	return &api.Target{Namespace: o.Namespace, Pod: o.Pod, Container: o.Container, Attempt: -1}
}

func (o *EditOptions) name() string {
	return fmt.Sprintf("%s in %s/%s", o.Path, o.Namespace, o.Pod)
}

// Run fetches the file, opens the editor and writes back only a change.
func (o *EditOptions) Run(ctx context.Context) error {
	client, closeConn, err := dialAgent(o.Agent)
	if err != nil {
		return err
	}
	defer closeConn()

	orig, err := client.ReadFile(ctx, &api.ReadFileRequest{Target: o.target(), Path: o.Path,
		Reason: o.Reason})
	if err != nil {
		return agentError(o.Agent, err)
	}

	edited, local, err := o.editLocally(ctx, orig.Content)
	if err != nil {
		return err
	}
	if bytes.Equal(edited, orig.Content) {
		os.RemoveAll(filepath.Dir(local))
		fmt.Fprintf(o.Out, "%s: no change, nothing written\n", o.name())
		return nil
	}
	return o.writeBack(ctx, client, orig, edited, local)
}

func (o *EditOptions) writeBack(ctx context.Context, client api.AgentClient,
	orig *api.ReadFileResponse, edited []byte, local string) error {
	resp, err := client.WriteFile(ctx, &api.WriteFileRequest{
		Target:         o.target(),
		Path:           o.Path,
		Content:        edited,
		ExpectedSha256: orig.Sha256,
		Signal:         strings.TrimPrefix(strings.ToUpper(o.Signal), "SIG"),
		Reason:         o.Reason,
	})
	if err != nil {
		// Keep the user's work: the message says where it is.
		return fmt.Errorf("%w (your edit is kept in %s)", agentError(o.Agent, err), local)
	}
	os.RemoveAll(filepath.Dir(local))

	how := "replaced atomically"
	if resp.InPlace {
		how = "written in place: it is a mount point"
	}
	fmt.Fprintf(o.Out, "wrote %s (%s)\n", o.name(), how)
	if resp.SignalledPid != 0 {
		fmt.Fprintf(o.Out, "sent %s to the main process of %s/%s (host pid %d)\n",
			resp.Signal, o.Namespace, o.Pod, resp.SignalledPid)
	}
	return nil
}

// editLocally writes content to a private temporary file named like the
// remote one, so the editor picks the right syntax, runs the editor on it
// and returns what it left.
func (o *EditOptions) editLocally(ctx context.Context, content []byte) ([]byte, string, error) {
	dir, err := os.MkdirTemp("", "nodedebug-edit-")
	if err != nil {
		return nil, "", fmt.Errorf("create temporary folder for %s: %w", o.name(), err)
	}
	if err := checkSpace(dir, int64(len(content))); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("%s: %w", o.name(), err)
	}

	local := filepath.Join(dir, path.Base(o.Path))
	if err := os.WriteFile(local, content, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("write %s to %s: %w; set TMPDIR to a folder with room", o.name(), local, err)
	}

	if err := o.runEditor(ctx, local); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	edited, err := os.ReadFile(local)
	if err != nil {
		return nil, "", fmt.Errorf("read back %s: %w; nothing was written", local, err)
	}
	return edited, local, nil
}

// checkSpace refuses a file that would not fit twice (the file and an
// editor's backup) in the temporary folder.
func checkSpace(dir string, size int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("check free space in %s: %w", dir, err)
	}

	free := int64(st.Bavail) * st.Bsize
	if 2*size > free {
		return fmt.Errorf("the file is %d bytes and %s has %d bytes free; set TMPDIR to a larger folder",
			size, filepath.Dir(dir), free)
	}
	return nil
}

// runEditor runs $EDITOR the way git does, through sh, so that quoted
// arguments in it work ("vim -c 'set ft=conf'"). The file name is passed
// as an argument, never pasted into the command line.
func (o *EditOptions) runEditor(ctx context.Context, file string) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", o.Editor+` "$@"`, o.Editor, file)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.In, o.Out, o.ErrOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("editor %q failed on %s: %w; nothing was written", o.Editor, o.name(), err)
	}
	return nil
}

func newEditCommand(streams Streams) *cobra.Command {
	o := &EditOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "edit [-n NAMESPACE] [-c CONTAINER] POD:PATH [--signal HUP]",
		Short: "Edit a file of a running container in your $EDITOR",
		Long: `Open a file of a running container in $EDITOR (or vi) and write it back
only if it changed, keeping its mode, owner and every byte you did not
touch. The write is atomic; a file that is a mount point of its own (a
ConfigMap subPath, /etc/hosts) is written in place so the process sees it.
If the file changed in the container meanwhile, nothing is written.
--signal sends a signal to the container's main process afterwards.`,
		Example: `  EDITOR=nano nodedebug edit web:/etc/app.conf --signal HUP`,
		Args:    cobra.ArbitraryArgs,
		RunE:    completeValidateRun(o),
	}

	flags := cmd.Flags()
	flags.StringVarP(&o.Namespace, "namespace", "n", "default", "namespace of the pod")
	flags.StringVarP(&o.Container, "container", "c", "", "container in the pod")
	flags.StringVar(&o.Signal, "signal", "", "signal to send to the container's main process after writing, such as HUP")
	flags.StringVar(&o.Reason, "reason", "", "why you are editing; goes to the audit log, and the agent may require it")
	flags.StringVar(&o.Agent, "agent", DefaultAgentEndpoint, "agent socket")
	return cmd
}
