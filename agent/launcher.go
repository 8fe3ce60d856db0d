package agent

import (
	"context"
	"io"
	"log/slog"

	"github.com/nodedebug/nodedebug/api"
	"github.com/nodedebug/nodedebug/cri"
)

// launcher is one way of running a tool process next to a target: the
// containerd client, the CRI API, or entering namespaces directly.
type launcher interface {
	// name appears in logs and in the Runtime RPC.
	name() string

	// launch creates the tool process in the target's namespaces, ready to
	// start: none of the user's code has run yet. The caller removes the
	// tool even when launch fails half-way.
	launch(ctx context.Context, req *toolRequest) (tool, error)
}

// toolRequest is what every launcher gets for one session.
type toolRequest struct {
	id string
	// agent is the socket of the agent that owns the session.
	agent  string
	start  *api.Start
	target *cri.Target
	log    *slog.Logger

	// stdin is nil when the client sends none; stdout and stderr forward
	// to the client, and with a terminal only stdout is used.
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// tool is a launched tool process.
type tool interface {
	// pid is the host pid of the tool process, for the namespace check.
	pid() int

	// start runs the user's command; exits delivers its status once.
	start(ctx context.Context) (exits <-chan exitStatus, err error)

	resize(ctx context.Context, width, height uint32) error

	// closeStdin delivers EOF after every byte written so far.
	closeStdin(ctx context.Context) error

	// drained is closed once all output has been forwarded.
	drained() <-chan struct{}

	// remove kills every process of the tool and deletes what launch
	// created. It must work on a half-launched tool, and more than once.
	remove(ctx context.Context) error
}

// exitStatus is how a tool process ended.
type exitStatus struct {
	code int32
	err  error
}

// labels mark a tool container as a session's, so that the agent that
// owns it can find it again after a crash, and no other agent touches it.
func (req *toolRequest) labels() map[string]string {
	return map[string]string{
		labelSession: req.id,
		labelTarget:  req.target.String(),
		labelAgent:   req.agent,
	}
}
