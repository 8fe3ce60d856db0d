package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sample is one timed run of an external command.
type sample struct {
	wall time.Duration
	cpu  time.Duration // user + system of the command itself
	code int
	out  []byte
	err  error
}

// runCmd runs a command to completion and times it from fork to exit.
// stdin may be nil; stdout, when nil, is kept in sample.out.
func runCmd(ctx context.Context, stdin io.Reader, stdout io.Writer, name string, args ...string) sample {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	if stdout == nil {
		cmd.Stdout = &out
	}
	cmd.Stderr = &stderr

	started := time.Now()
	err := cmd.Run()
	s := sample{wall: time.Since(started), out: out.Bytes()}
	if cmd.ProcessState != nil {
		s.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		s.code = cmd.ProcessState.ExitCode()
	}

	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		s.err = fmt.Errorf("run %s: %w", filepath.Base(name), err)
	} else if err != nil {
		s.err = fmt.Errorf("%s %s: exit %d: %s: %w", filepath.Base(name),
			strings.Join(args, " "), s.code, lastLine(stderr.String()), errFailed)
	}
	return s
}

// lastLine is the end of a tool's stderr, where its error is; warnings
// come first.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// attachArgs is `nodedebug attach` of the target pod with a command,
// through the containerd-path agent.
func (e *env) attachArgs(target string, stdin bool, command ...string) []string {
	return e.agent.attachArgs(target, stdin, command...)
}

func (a *agentProcess) attachArgs(target string, stdin bool, command ...string) []string {
	args := []string{"attach", "--agent", "unix://" + a.socket, "-n", podNamespace}
	if stdin {
		args = append(args, "-i")
	}
	args = append(args, target, "--")
	return append(args, command...)
}

func (e *env) attach(ctx context.Context, stdin io.Reader, stdout io.Writer, command ...string) sample {
	return e.attachVia(ctx, e.agent, stdin, stdout, command...)
}

// attachVia attaches to the target through the given agent.
func (e *env) attachVia(ctx context.Context, a *agentProcess, stdin io.Reader, stdout io.Writer,
	command ...string) sample {
	return runCmd(ctx, stdin, stdout, e.binary, a.attachArgs("target/app", stdin != nil, command...)...)
}

// crictlExec runs `crictl exec` in the target container, through the CRI
// streaming server on 127.0.0.1.
func (e *env) crictlExec(ctx context.Context, stdin io.Reader, stdout io.Writer, command ...string) sample {
	endpoint := "unix://" + e.containerd.Socket
	args := []string{"--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "exec"}
	if stdin != nil {
		args = append(args, "-i")
	}
	args = append(args, e.targetID())
	return runCmd(ctx, stdin, stdout, e.cfg.crictl, append(args, command...)...)
}

// ctrRun starts and removes a bare toolbox container in the target's pid
// namespace: the floor for any tool container.
func (e *env) ctrRun(ctx context.Context, id string, command ...string) sample {
	args := []string{"-a", e.containerd.Socket, "-n", "nodedebug", "run", "--rm",
		"--with-ns", "pid:/proc/" + strconv.Itoa(e.targetPid) + "/ns/pid",
		e.images.Toolbox.Ref, id}
	return runCmd(ctx, nil, nil, e.cfg.ctr, append(args, command...)...)
}

func containerStatusRequest(id string) *runtimeapi.ContainerStatusRequest {
	return &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true}
}
