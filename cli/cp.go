package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nodedebug/nodedebug/api"
	"github.com/nodedebug/nodedebug/fsroot"
)

// CopyOptions is everything `nodedebug cp` needs, free of cobra.
type CopyOptions struct {
	Namespace string
	Container string
	Exited    bool
	Attempt   int
	Agent     string
	// Reason goes to the agent's audit log; its policy may require it.
	Reason string

	// Filled by Complete from SRC and DST.
	Pod        string
	RemotePath string
	// LocalPath is "-" for a tar stream on stdin or stdout.
	LocalPath string
	ToTarget  bool

	Streams
}

// remoteRef is one side of a copy written [NAMESPACE/]POD:PATH.
type remoteRef struct {
	namespace, pod, path string
}

// parseRemote reads [NAMESPACE/]POD:PATH the way kubectl cp does. A local
// path that holds a colon can be written ./a:b.
func parseRemote(arg string) (remoteRef, bool) {
	before, after, found := strings.Cut(arg, ":")
	if !found || before == "" || strings.HasPrefix(before, ".") || strings.HasPrefix(before, "/") {
		return remoteRef{}, false
	}

	ns, pod, hasNS := strings.Cut(before, "/")
	if !hasNS {
		return remoteRef{pod: before, path: after}, true
	}
	return remoteRef{namespace: ns, pod: pod, path: after}, true
}

// Complete works out the direction from which side names a pod.
func (o *CopyOptions) Complete(args []string) error {
	if len(args) != 2 {
		return usageError("cp needs SRC and DST, one of them POD:PATH: nodedebug cp POD:/etc/app.conf ./app.conf")
	}

	src, srcRemote := parseRemote(args[0])
	dst, dstRemote := parseRemote(args[1])
	switch {
	case srcRemote && dstRemote:
		return usageError("cp copies between this machine and a pod, not between pods; one side must be a local path")
	case !srcRemote && !dstRemote:
		return usageError("neither %q nor %q names a pod: write one side as POD:PATH", args[0], args[1])
	}

	remote, local := src, args[1]
	if dstRemote {
		remote, local, o.ToTarget = dst, args[0], true
	}
	return o.setRemote(remote, local)
}

func (o *CopyOptions) setRemote(r remoteRef, local string) error {
	if r.namespace != "" {
		o.Namespace = r.namespace
	}
	pod, container, err := splitTarget(r.pod, o.Container)
	if err != nil {
		return err
	}

	o.Pod, o.Container, o.RemotePath, o.LocalPath = pod, container, r.path, local
	return nil
}

// Validate checks the flag combinations.
func (o *CopyOptions) Validate() error {
	switch {
	case o.Namespace == "":
		return usageError("the namespace is empty; pass -n NAMESPACE")
	case !path.IsAbs(o.RemotePath):
		return usageError("the path in the pod must be absolute, such as %s:/%s", o.Pod, o.RemotePath)
	case o.LocalPath == "":
		return usageError("the local path is empty; use - for a tar stream on stdin or stdout")
	case o.ToTarget && o.Exited:
		return usageError("--exited only copies out: an exited container cannot be written to")
	}
	return validateAttempt(o.Attempt, o.Exited)
}

// Run copies, streaming a tar through the agent.
func (o *CopyOptions) Run(ctx context.Context) error {
	client, closeConn, err := dialAgent(o.Agent)
	if err != nil {
		return err
	}
	defer closeConn()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stream, err := client.Copy(ctx)
	if err != nil {
		return agentError(o.Agent, err)
	}
	if err := stream.Send(&api.CopyRequest{Msg: &api.CopyRequest_Header{Header: o.header()}}); err != nil {
		return agentError(o.Agent, err)
	}

	if o.ToTarget {
		return o.copyIn(stream)
	}
	return o.copyOut(stream)
}

func (o *CopyOptions) header() *api.CopyHeader {
	return &api.CopyHeader{
		Target: &api.Target{Namespace: o.Namespace, Pod: o.Pod, Container: o.Container,
			Exited: o.Exited, Attempt: int32(o.Attempt)},
		Path:     o.RemotePath,
		ToTarget: o.ToTarget,
		Reason:   o.Reason,
	}
}

func (o *CopyOptions) remoteName() string {
	return fmt.Sprintf("%s/%s:%s", o.Namespace, o.Pod, o.RemotePath)
}

// copyOut receives the agent's tar and unpacks it locally, or passes it
// through to stdout for "-".
func (o *CopyOptions) copyOut(stream api.Agent_CopyClient) error {
	if err := stream.CloseSend(); err != nil {
		return agentError(o.Agent, err)
	}

	progress := newProgress(o.ErrOut, 0)
	src := &tarStream{stream: stream, progress: progress}
	if o.LocalPath == "-" {
		_, err := io.Copy(o.Out, src)
		progress.finish()
		return o.streamError(err)
	}

	err := unpackLocal(src, o.LocalPath)
	progress.finish()
	if err != nil {
		return o.streamError(err)
	}
	// Drain to the agent's Done, which also carries its errors.
	_, err = io.Copy(io.Discard, src)
	return o.streamError(err)
}

// streamError prefers the agent's message to what it caused locally.
func (o *CopyOptions) streamError(err error) error {
	var remote *remoteError
	if errors.As(err, &remote) {
		return agentError(o.Agent, remote.err)
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", o.remoteName(), err)
	}
	return nil
}

// unpackLocal writes a tar stream at local as cp would: into it when it is
// a folder, else as it. Entries cannot leave that place.
func unpackLocal(src io.Reader, local string) error {
	abs, err := filepath.Abs(local)
	if err != nil {
		return err
	}
	root, err := fsroot.Open("/", "this machine")
	if err != nil {
		return err
	}
	defer root.Close()

	dst, err := root.Destination(abs)
	if err != nil {
		return err
	}
	_, err = root.Unpack(src, dst, fsroot.UnpackOptions{Chown: os.Geteuid() == 0})
	return err
}

// copyIn sends a tar of the local path, or stdin for "-", then waits for
// the agent to report it was written.
func (o *CopyOptions) copyIn(stream api.Agent_CopyClient) error {
	src, total, err := o.localTar()
	if err != nil {
		return err
	}
	defer src.Close()

	progress := newProgress(o.ErrOut, total)
	sendErr := sendTar(stream, src, progress)
	progress.finish()

	if err := waitDone(stream); err != nil {
		return agentError(o.Agent, err)
	}
	if sendErr != nil {
		return fmt.Errorf("send %s: %w", o.LocalPath, sendErr)
	}
	return nil
}

// localTar is the tar stream to send and its size when known.
func (o *CopyOptions) localTar() (io.ReadCloser, int64, error) {
	if o.LocalPath == "-" {
		return io.NopCloser(o.In), 0, nil
	}

	abs, err := filepath.Abs(o.LocalPath)
	if err != nil {
		return nil, 0, err
	}
	if _, err := os.Lstat(abs); err != nil {
		return nil, 0, fmt.Errorf("local path %s: %w", o.LocalPath, err)
	}

	r, w := io.Pipe()
	go func() {
		root, err := fsroot.Open("/", "this machine")
		if err == nil {
			_, err = root.Pack(w, abs)
			root.Close()
		}
		w.CloseWithError(err)
	}()
	return r, treeSize(abs), nil
}

// treeSize adds up the file sizes under p, for the progress bar only.
func treeSize(p string) int64 {
	var total int64
	_ = filepath.WalkDir(p, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func newCopyCommand(streams Streams) *cobra.Command {
	o := &CopyOptions{Streams: streams}
	cmd := &cobra.Command{
		Use:   "cp [-n NAMESPACE] [-c CONTAINER] SRC DST",
		Short: "Copy files and folders between this machine and a container, with no tar in the image",
		Long: `Copy files and folders into or out of a container; one side is
[NAMESPACE/]POD:PATH, the other a local path, or - for a tar stream on
stdin (copying in) or stdout (copying out).

The agent does the file I/O itself, so the image needs no tar or shell.
Modes, owners and symlinks are kept; every path is resolved inside the
container's root, so no symlink in it can reach a file of the node. Each
file appears atomically. With --exited, copies out of an exited container.`,
		Example: `  nodedebug cp web:/etc/app.conf ./app.conf
  nodedebug cp ./app.conf web:/etc/app.conf
  nodedebug cp --exited web:/tmp ./crash-tmp
  nodedebug cp web:/var/log - | tar -tv`,
		Args: cobra.ArbitraryArgs,
		RunE: completeValidateRun(o),
	}

	flags := cmd.Flags()
	flags.StringVarP(&o.Namespace, "namespace", "n", "default", "namespace of the pod")
	flags.StringVarP(&o.Container, "container", "c", "", "container in the pod")
	flags.BoolVar(&o.Exited, "exited", false, "copy out of an exited container")
	flags.IntVar(&o.Attempt, "attempt", -1, "with --exited, the restart attempt (default: the newest)")
	flags.StringVar(&o.Reason, "reason", "", "why you are copying; goes to the audit log, and the agent may require it")
	flags.StringVar(&o.Agent, "agent", DefaultAgentEndpoint, "agent socket")
	return cmd
}
