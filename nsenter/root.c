// The toolbox root, built by the constructor in its private mount
// namespace before it joins the target's pid namespace: the unpacked
// toolbox as an overlay with a tmpfs upper layer, a minimal /dev, and
// nothing of the node. The child adds /proc and /target once it is in the
// target's pid namespace.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsenter.h"

#define PTS_PREFIX "/dev/pts/"

// devices are the host's device nodes the tool gets, bound one by one;
// no disk, no host terminal but its own, no kernel interface.
static const char *const devices[] = { "null", "zero", "full", "random", "urandom", "tty" };

// dev_links are the usual links into /proc/self/fd.
static const char *const dev_links[][2] = {
	{ "fd", "/proc/self/fd" },
	{ "stdin", "/proc/self/fd/0" },
	{ "stdout", "/proc/self/fd/1" },
	{ "stderr", "/proc/self/fd/2" },
};

static void join(char *buf, const char *dir, const char *name)
{
	if (snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		fail("path", dir);
	}
}

static void make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		fail("create", path);
}

// bind_file binds the file src onto a new empty file at dst.
static void bind_file(const char *src, const char *dst)
{
	int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		fail("create", dst);
	close(fd);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		fail("bind", src);
}

static void mount_overlay(const char *rootfs, const char *scratch, char *root)
{
	char upper[PATH_MAX], work[PATH_MAX], data[3 * PATH_MAX + 64];

	if (mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		fail("mount tmpfs on", scratch);

	join(upper, scratch, "upper");
	join(work, scratch, "work");
	join(root, scratch, "root");
	make_dir(upper, 0755);
	make_dir(work, 0755);
	make_dir(root, 0755);

	snprintf(data, sizeof(data), "lowerdir=%s,upperdir=%s,workdir=%s", rootfs, upper, work);
	if (mount("overlay", root, "overlay", 0, data) < 0)
		fail("mount toolbox overlay of", rootfs);
}

// bind_terminal gives the tool the session's own terminal, when its
// stdin is one on the host's /dev/pts, at the same path, so that tty(1)
// names it. The rest of the host's /dev/pts stays out.
static void bind_terminal(const char *dev)
{
	char link[PATH_MAX], dst[PATH_MAX];
	struct stat in, host;
	ssize_t len;

	if (!isatty(STDIN_FILENO))
		return;
	len = readlink("/proc/self/fd/0", link, sizeof(link) - 1);
	if (len < 0)
		return;
	link[len] = '\0';

	if (strncmp(link, PTS_PREFIX, strlen(PTS_PREFIX)) != 0 ||
	    strchr(link + strlen(PTS_PREFIX), '/') != NULL)
		return;
	if (fstat(STDIN_FILENO, &in) < 0 || stat(link, &host) < 0 ||
	    in.st_dev != host.st_dev || in.st_ino != host.st_ino)
		return;

	join(dst, dev, link + strlen("/dev/"));
	bind_file(link, dst);
}

// make_dev mounts a small tmpfs on root/dev with the devices above,
// /dev/shm, /dev/pts with the session's terminal, and the fd links.
static void make_dev(const char *root)
{
	char dev[PATH_MAX], path[PATH_MAX], src[PATH_MAX];
	size_t i;

	join(dev, root, "dev");
	make_dir(dev, 0755);
	if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
		fail("mount tmpfs on", dev);

	for (i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
		join(src, "/dev", devices[i]);
		join(path, dev, devices[i]);
		if (access(src, F_OK) == 0)
			bind_file(src, path);
	}
	for (i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++) {
		join(path, dev, dev_links[i][0]);
		if (symlink(dev_links[i][1], path) < 0)
			fail("link", path);
	}

	join(path, dev, "shm");
	make_dir(path, 01777);
	if (mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777") < 0)
		fail("mount tmpfs on", path);

	join(path, dev, "pts");
	make_dir(path, 0755);
	bind_terminal(dev);
}

// pivot makes root the process's root and detaches the node's.
static void pivot(const char *root)
{
	if (chdir(root) < 0)
		fail("enter", root);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail("pivot into", root);
	if (umount2(".", MNT_DETACH) < 0)
		fail("detach", "the node's root");
	if (chdir("/") < 0)
		fail("enter", "/");
}

void enter_root(const char *rootfs, const char *scratch)
{
	char root[PATH_MAX], path[PATH_MAX];

	mount_overlay(rootfs, scratch, root);

	join(path, root, "proc");
	make_dir(path, 0555);
	join(path, root, "tmp");
	make_dir(path, 01777);
	make_dev(root);

	pivot(root);
}
