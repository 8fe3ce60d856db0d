// Package toolinit is the first process of every tool container.
//
// A tool container joins the target's pid namespace without owning it, so
// the target's pid 1 inherits every process the tool orphans. Few apps
// reap children they did not start; their zombies would stay in the
// target's namespace for its whole life. toolinit prevents that: it is a
// child subreaper, so orphans come to it instead; when the command exits,
// or when the agent ends the session with SIGTERM, it kills what is left
// of the session, reaps it all, and only then exits.
package toolinit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Exit statuses a shell would use for a command that cannot run.
const (
	exitCannotRun = 126
	exitNotFound  = 127
)

// Run starts args as the session's command and returns the status the
// tool container should exit with: the command's own, or 128+N when it was
// killed by signal N.
func Run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "nodedebug init: no command")
		return exitCannotRun
	}

	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(stderr, "nodedebug init: become a subreaper: %v\n", err)
		return exitCannotRun
	}

	// Handled, not ignored: ignored signals would stay ignored in the
	// command. Terminal signals reach the command's process group
	// directly; SIGTERM and SIGHUP end the session.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, unix.SIGTERM, unix.SIGHUP, unix.SIGINT, unix.SIGQUIT,
		unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)
	defer signal.Stop(signals)

	command, err := start(args)
	if err != nil {
		code := startFailureCode(err)
		fmt.Fprintf(stderr, "nodedebug: %s\n", startFailureMessage(args[0], code, err))
		return code
	}

	go endOnSignal(signals)
	return exitCode(reapAll(command))
}

func start(args []string) (int, error) {
	path, err := exec.LookPath(args[0])
	if err != nil {
		return 0, err
	}

	process, err := os.StartProcess(path, args, &os.ProcAttr{
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Env:   os.Environ(),
	})
	if err != nil {
		return 0, err
	}
	return process.Pid, nil
}

func startFailureCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return exitNotFound
	}
	return exitCannotRun
}

func startFailureMessage(command string, code int, err error) string {
	if code == exitNotFound {
		return fmt.Sprintf("%s: command not found", command)
	}
	if cause := errors.Unwrap(err); cause != nil {
		err = cause
	}
	return fmt.Sprintf("cannot run %s: %v", command, err)
}

func endOnSignal(signals <-chan os.Signal) {
	for sig := range signals {
		if sig == unix.SIGTERM || sig == unix.SIGHUP {
			killDescendants()
		}
	}
}

// reapAll waits for every child until none is left, and returns how the
// command ended. Once the command is gone the rest of the session is
// killed; orphans keep arriving as they lose their parents, so each reap
// looks again.
func reapAll(command int) unix.WaitStatus {
	var commandStatus unix.WaitStatus
	commandDone := false
	for {
		var status unix.WaitStatus
		pid, err := unix.Wait4(-1, &status, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ECHILD: nothing left to reap.
			return commandStatus
		}

		if pid == command {
			commandStatus, commandDone = status, true
		}
		if commandDone {
			killDescendants()
		}
	}
}

func exitCode(status unix.WaitStatus) int {
	if status.Signaled() {
		return 128 + int(status.Signal())
	}
	return status.ExitStatus()
}

// killDescendants sends SIGKILL to every process below this one. It walks
// parent links in /proc, which shows the target's pid namespace: a blanket
// kill(-1) would hit the target itself.
func killDescendants() {
	for _, pid := range descendants(os.Getpid(), parents()) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// parents maps each visible pid to its parent pid.
func parents() map[int]int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}

	parentOf := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if ppid, ok := parseParent(string(stat)); ok {
			parentOf[pid] = ppid
		}
	}
	return parentOf
}

// parseParent reads the ppid from /proc/<pid>/stat.
func parseParent(stat string) (int, bool) {
	fields, ok := StatFields(stat)
	if !ok || len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// StatFields splits /proc/<pid>/stat after the command name, so the
// process state is field 0 and the parent pid field 1. The name in
// parentheses may itself hold spaces and parentheses, so fields are
// counted from the last ')'.
func StatFields(stat string) ([]string, bool) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return nil, false
	}
	return strings.Fields(stat[end+1:]), true
}

// descendants lists every pid whose chain of parents reaches root.
func descendants(root int, parentOf map[int]int) []int {
	children := map[int][]int{}
	for pid, ppid := range parentOf {
		children[ppid] = append(children[ppid], pid)
	}

	var found []int
	queue := []int{root}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, child := range children[next] {
			found = append(found, child)
			queue = append(queue, child)
		}
	}
	return found
}
