package agent

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// terminateSession sends SIGTERM to every process whose environment marks
// it as part of session id, and waits within stopGrace for them to go.
// On the CRI path the runtime does not say which processes an exec
// started; the tool init among them then kills and reaps the rest, which
// would otherwise end as zombies of the target's pid 1.
func terminateSession(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()

	for _, pid := range sessionProcesses(id) {
		_ = unix.Kill(pid, unix.SIGTERM)
	}
	for len(sessionProcesses(id)) > 1 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
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
