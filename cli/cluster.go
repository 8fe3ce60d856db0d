package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/nodedebug/nodedebug/api"
)

// errNoKubeconfig is attach without --agent where no kubeconfig is.
var errNoKubeconfig = fmt.Errorf("no kubeconfig to reach the Kubernetes API server: pass --kubeconfig,"+
	" or attach on the node with --agent %s", DefaultAgentEndpoint)

// completeNamespace takes the kubeconfig context's namespace when -n is
// not given, as kubectl does; node-local attaches default to "default".
func (o *AttachOptions) completeNamespace() error {
	if o.Namespace != "" {
		return nil
	}
	o.Namespace = "default"
	if o.Local() {
		return nil
	}

	ns, err := o.Kube.Namespace()
	if clientcmd.IsEmptyConfig(err) {
		return errNoKubeconfig
	}
	if err != nil {
		return fmt.Errorf("read the namespace of the kubeconfig context: %w", err)
	}
	o.Namespace = ns
	return nil
}

// Local reports whether attach talks to a node's agent socket directly
// (--agent) instead of going through the Kubernetes API server.
func (o *AttachOptions) Local() bool {
	return o.AgentSet || o.Kube == nil
}

// validateCluster refuses what the API server path does not carry yet.
func (o *AttachOptions) validateCluster() error {
	if o.Local() {
		return nil
	}
	for flag, set := range map[string]bool{"--detach": o.Detach, "--session": o.Session != "",
		"--custom": o.CustomFile != ""} {
		if set {
			return usageError("%s works on the node only for now: add --agent unix:///run/nodedebug/agent.sock", flag)
		}
	}
	return nil
}

// runCluster attaches through the API server and the gateway with the
// remote-command websocket protocol, as kubectl exec does.
func (o *AttachOptions) runCluster(ctx context.Context) error {
	config, err := o.Kube.RESTConfig()
	if clientcmd.IsEmptyConfig(err) {
		return errNoKubeconfig
	}
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	target, err := o.attachURL(config.Host)
	if err != nil {
		return err
	}
	executor, err := remotecommand.NewWebSocketExecutor(config, "GET", target.String())
	if err != nil {
		return fmt.Errorf("prepare attach to %s: %w", target.Host, err)
	}

	t := o.terminal()
	streams := o.streamOptions(t)
	if t != nil {
		restore, err := t.makeRaw()
		if err != nil {
			return err
		}
		defer restore()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		streams.TerminalSizeQueue = newSizeQueue(ctx, t)
	}
	return o.clusterError(executor.StreamWithContext(ctx, streams))
}

func (o *AttachOptions) streamOptions(t *localTerminal) remotecommand.StreamOptions {
	streams := remotecommand.StreamOptions{Stdout: o.Out, Stderr: o.ErrOut, Tty: t != nil}
	if o.Stdin {
		streams.Stdin = o.In
	}
	if t != nil {
		// A terminal merges stderr into stdout.
		streams.Stderr = nil
	}
	return streams
}

// attachURL is the gateway's subresource under the API server's address.
func (o *AttachOptions) attachURL(host string) (*url.URL, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("API server address %q: %w", host, err)
	}
	u.Path = path.Join(u.Path, "apis", api.Group, api.Version, "namespaces", o.Namespace,
		"pods", o.Pod, api.AttachSubresource)

	q := url.Values{}
	set := func(name, value string) {
		if value != "" {
			q.Set(name, value)
		}
	}
	set("container", o.Container)
	q["command"] = o.Command
	set("stdin", strconv.FormatBool(o.Stdin))
	set("stdout", "true")
	set("stderr", strconv.FormatBool(!o.TTY))
	set("tty", strconv.FormatBool(o.TTY))
	set(api.ParamImage, o.Image)
	set(api.ParamProfile, o.Profile)
	set(api.ParamReason, o.Reason)
	if o.ShareSet {
		q[api.ParamShare] = append([]string{""}, o.Share...)
	}
	if o.Exited {
		set(api.ParamExited, "true")
		set(api.ParamAttempt, strconv.Itoa(o.Attempt))
	}
	u.RawQuery = q.Encode()
	return u, nil
}

// clusterError turns the executor's result into attach's: the remote exit
// status, or one line naming what refused the session.
func (o *AttachOptions) clusterError(err error) error {
	var upgrade *httpstream.UpgradeFailureError
	if errors.As(err, &upgrade) {
		// The Status the API server or the gateway refused the upgrade with.
		err = upgrade.Cause
	}

	var exitErr exec.CodeExitError
	var status *apierrors.StatusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exitErr):
		return &ExitError{Code: exitErr.Code}
	case !errors.As(err, &status):
		return fmt.Errorf("attach to %s/%s: %w", o.Namespace, o.Pod, err)
	}
	return errors.New(statusMessage(status.ErrStatus))
}

// statusMessage adds the next step to the API server's own refusals; the
// gateway's messages already name it.
func statusMessage(s metav1.Status) string {
	fromAPIServer := s.Details != nil && s.Details.Group == api.Group
	switch {
	case s.Reason == metav1.StatusReasonForbidden && fromAPIServer:
		return s.Message + " (nodedebug attach needs a binding to the ClusterRole nodedebug-user, and create on pods/exec)"
	case s.Reason == metav1.StatusReasonNotFound && (s.Details == nil || fromAPIServer):
		return s.Message + " (is nodedebug installed in the cluster? see the README's cluster install)"
	case s.Reason == metav1.StatusReasonServiceUnavailable && fromAPIServer:
		return s.Message + " (the nodedebug gateway is not answering the API server)"
	}
	return s.Message
}

// sizeQueue feeds the terminal's size to the executor: first the current
// one, then one per SIGWINCH, until ctx ends.
type sizeQueue struct {
	ctx     context.Context
	t       *localTerminal
	signals chan os.Signal
	sent    bool
}

func newSizeQueue(ctx context.Context, t *localTerminal) *sizeQueue {
	q := &sizeQueue{ctx: ctx, t: t, signals: make(chan os.Signal, 1)}
	signal.Notify(q.signals, unix.SIGWINCH)
	context.AfterFunc(ctx, func() { signal.Stop(q.signals) })
	return q
}

// Next blocks until the size changes; nil ends the executor's loop.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	if q.sent {
		select {
		case <-q.signals:
		case <-q.ctx.Done():
			return nil
		}
	}
	q.sent = true

	size := q.t.size()
	if size == nil {
		return &remotecommand.TerminalSize{}
	}
	return &remotecommand.TerminalSize{Width: uint16(size.Width), Height: uint16(size.Height)}
}
