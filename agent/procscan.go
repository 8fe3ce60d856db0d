package agent

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// terminateSession ends the session's commands on the CRI path, where the
// runtime does not say which processes an exec started: it finds them by
// the environment marker and sends SIGTERM to each but the container's
// main process, then waits within stopGrace for them to go. The tool init
// among them kills and reaps the rest. The main process must stay until
// then: stopping the container first would kill the init before it reaps,
// and its orphans would end as zombies of the target's pid 1.
func terminateSession(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()

	for _, pid := range sessionCommands(id) {
		_ = unix.Kill(pid, unix.SIGTERM)
	}
	for len(sessionCommands(id)) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sessionCommands lists the session's processes but the container's
// main process, which runs `nodedebug pause`.
func sessionCommands(id string) []int {
	var pids []int
	for _, pid := range sessionProcesses(id) {
		if !isToolMain(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func isToolMain(pid int) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimSuffix(cmdline, []byte{0}), []byte{0})
	return len(args) == 2 && string(args[0]) == InitPath && string(args[1]) == "pause"
}

// sessionProcesses lists host pids whose environment holds
// NODEDEBUG_SESSION=id, the waiting main process among them.
func sessionProcesses(id string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}

	marker := []byte(envSession + "=" + id + "\x00")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		environ, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && bytes.Contains(append(environ, 0), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}
