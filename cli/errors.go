package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"

	"github.com/nodedebug/nodedebug/api"
	"github.com/nodedebug/nodedebug/cri"
)

// Exit statuses of nodedebug itself. The remote command's own status is
// passed through unchanged; these are chosen not to collide with a shell's
// 126 (cannot run), 127 (not found) and 128+N (killed by signal N).
const (
	// ExitFailure: nodedebug failed (agent unreachable, target not found,
	// bad target state, runtime error).
	ExitFailure = 125
	// ExitUsage: the command line was wrong.
	ExitUsage = 2
)

// ExitError carries the remote command's exit status to main.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("remote command exited with status %d", e.Code)
}

// UsageError is a command line nodedebug cannot act on.
type UsageError struct {
	msg string
}

func (e *UsageError) Error() string { return e.msg }

// UsageErrorf is a bad command line, for commands outside this package.
func UsageErrorf(format string, args ...any) error {
	return usageError(format, args...)
}

func usageError(format string, args ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, args...)}
}

// ExitCode maps what a command returned to the process's exit status.
func ExitCode(ctx context.Context, err error) int {
	var exitErr *ExitError
	var usageErr *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		return exitErr.Code
	case errors.As(err, &usageErr):
		return ExitUsage
	case ctx.Err() != nil:
		// Interrupted by the user: the conventional 128+SIGINT.
		return 130
	}
	return ExitFailure
}

// dialAgent connects to the agent's unix socket; the connection is lazy, so
// a missing socket is checked here to give a clear error.
func dialAgent(endpoint string) (api.AgentClient, func(), error) {
	path, err := cri.SocketPath(endpoint)
	if err != nil {
		return nil, nil, usageError("--agent: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("agent socket %s not found: is the nodedebug agent running on this node? (%w)", path, err)
	}

	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
		// Room for several large output messages in flight.
		grpc.WithInitialWindowSize(8<<20),
		grpc.WithInitialConnWindowSize(8<<20),
		experimental.WithBufferPool(api.Buffers),
		// Socket reads and writes of 256 KiB instead of 32 KiB.
		grpc.WithReadBufferSize(256<<10),
		grpc.WithWriteBufferSize(256<<10))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to agent at %s: %w", path, err)
	}
	return api.NewAgentClient(conn), func() { conn.Close() }, nil
}

// agentError turns a gRPC failure into the agent's own message, or says the
// agent could not be reached.
func agentError(endpoint string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}

	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("cannot reach the nodedebug agent at %s: %s", endpoint, st.Message())
	case codes.Unimplemented:
		return fmt.Errorf("%s is not a nodedebug agent socket (%s); check --agent", endpoint, st.Message())
	case codes.Canceled:
		return context.Canceled
	}
	return errors.New(st.Message())
}

// sessionError is agentError once the session runs: a broken connection
// then means the agent went away under it.
func sessionError(endpoint string, err error) error {
	if status.Code(err) == codes.Unavailable {
		return fmt.Errorf("lost the connection to the nodedebug agent at %s during the session (%s); "+
			"the agent removes the tool container when it runs again", endpoint, status.Convert(err).Message())
	}
	return agentError(endpoint, err)
}
