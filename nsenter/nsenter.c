// The nsenter constructor runs before the Go runtime starts, while the
// process still has one thread: only then may it join a mount or pid
// namespace. It does nothing unless the agent set NODEDEBUG_NSENTER_PID.
//
// With it set, the process
//   1. opens the target's namespace files (pid, and net/ipc/uts as asked),
//   2. moves into a private mount namespace of its own, so its mounts are
//      never seen by the host or the target, and into a fresh net, ipc or
//      uts namespace for each of those it does not join, so the tool never
//      shares the node's,
//   3. builds the toolbox root (root.c) and pivots into it, dropping the
//      node's root: still in the host's pid namespace, where only the host
//      sees it,
//   4. joins the namespaces, then forks: only a child enters a pid namespace,
//      and it is never there with the node's root,
//   5. reports the child's host pid on fd 3, waits for it and exits with its
//      status. The child returns from here into the Go runtime, which mounts
//      /proc, links /target and runs the command.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nsenter.h"

#define ENV_PID "NODEDEBUG_NSENTER_PID"
#define ENV_SHARE "NODEDEBUG_NSENTER_SHARE"
#define ENV_ROOTFS "NODEDEBUG_NSENTER_ROOTFS"
#define ENV_SCRATCH "NODEDEBUG_NSENTER_SCRATCH"
// ENV_TEST_STOP stops the child right after the fork, so that a test can
// look at it from the target's side; the agent never sets it.
#define ENV_TEST_STOP "NODEDEBUG_NSENTER_TEST_STOP"

struct ns_join {
	const char *name;
	int type;
	int fd;
};

void fail(const char *what, const char *arg)
{
	int saved = errno;

	dprintf(REPORT_FD, "error %s %s: %s\n", what, arg, strerror(saved));
	_exit(EXIT_SETUP);
}

static int open_ns(const char *pid, const char *name)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open", path);
	return fd;
}

// shared reports whether name is in the comma-separated list.
static int shared(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p = list;

	while (p && *p) {
		if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
			return 1;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return 0;
}

// wait_child waits for the child and exits as it did; signals that a
// terminal sends its whole process group are left to the child.
static void wait_child(pid_t child)
{
	int status;

	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTSTP, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR)
			_exit(EXIT_SETUP);
	}
	if (WIFSIGNALED(status))
		_exit(128 + WTERMSIG(status));
	_exit(WEXITSTATUS(status));
}

__attribute__((constructor)) static void nsenter(void)
{
	struct ns_join joins[] = {
		{ "net", CLONE_NEWNET, -1 },
		{ "ipc", CLONE_NEWIPC, -1 },
		{ "uts", CLONE_NEWUTS, -1 },
		{ "pid", CLONE_NEWPID, -1 },
	};
	const char *pid = getenv(ENV_PID);
	const char *share = getenv(ENV_SHARE);
	const char *rootfs = getenv(ENV_ROOTFS);
	const char *scratch = getenv(ENV_SCRATCH);
	size_t i, n = sizeof(joins) / sizeof(joins[0]);
	int fresh = CLONE_NEWNS;
	pid_t child;

	if (pid == NULL || *pid == '\0')
		return;
	if (rootfs == NULL || *rootfs == '\0' || scratch == NULL || *scratch == '\0')
		fail("environment", "needs " ENV_ROOTFS " and " ENV_SCRATCH);

	for (i = 0; i < n; i++) {
		if (joins[i].type == CLONE_NEWPID || shared(share, joins[i].name))
			joins[i].fd = open_ns(pid, joins[i].name);
		else
			fresh |= joins[i].type;
	}

	if (unshare(fresh) < 0)
		fail("unshare", "mount, net, ipc or uts namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("make private", "/");
	enter_root(rootfs, scratch);

	for (i = 0; i < n; i++) {
		if (joins[i].fd < 0)
			continue;
		if (setns(joins[i].fd, joins[i].type) < 0)
			fail("join namespace", joins[i].name);
		close(joins[i].fd);
	}

	child = fork();
	if (child < 0)
		fail("fork", "into the pid namespace");
	if (child == 0) {
		// Ends the session's command if this process is killed.
		prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
		if (getenv(ENV_TEST_STOP) != NULL)
			raise(SIGSTOP);
		return;
	}

	dprintf(REPORT_FD, "pid %d\n", child);
	close(REPORT_FD);
	wait_child(child);
}
