// Package fsroot does file I/O confined to one directory tree, the root
// filesystem of a container as the agent sees it. Every path is resolved by
// the kernel with openat2 RESOLVE_IN_ROOT, so an absolute or ".." symlink
// inside the tree is followed as the container would follow it and can
// never reach a file outside. Work is done on file descriptors, never on
// path strings that could change under us.
package fsroot

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrEscapes marks a tar entry that would land outside its destination.
	ErrEscapes = errors.New("escapes the destination")
	// ErrNotFile marks a path that must be a regular file and is not.
	ErrNotFile = errors.New("is not a regular file")
	// ErrChanged marks a file that changed since it was read.
	ErrChanged = errors.New("changed since it was read")
)

// maxSymlinks bounds following symlinks by hand, as the kernel does.
const maxSymlinks = 40

// Root is an open directory that paths are resolved in, as if it were "/".
type Root struct {
	fd   int
	name string
}

// Open opens dir as a root. name is how errors refer to the tree.
func Open(dir, name string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root filesystem of %s: %w", name, err)
	}
	return &Root{fd: fd, name: name}, nil
}

// Close releases the root's descriptor.
func (r *Root) Close() error {
	return unix.Close(r.fd)
}

// Name is how errors refer to the tree.
func (r *Root) Name() string {
	return r.name
}

// openIn opens p relative to dirfd with the given resolve flags.
func openIn(dirfd int, p string, flags int, resolve uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: resolve,
	}
	for {
		fd, err := unix.Openat2(dirfd, p, &how)
		// The kernel asks for a retry when a rename raced the lookup.
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// openDir opens a folder inside the root, following symlinks inside it.
func (r *Root) openDir(p string) (int, error) {
	return openIn(r.fd, relative(p), unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
}

// openParent opens the folder that holds p and returns the last name of p.
// The root itself has no parent: its name is ".".
func (r *Root) openParent(p string) (int, string, error) {
	clean := path.Clean("/" + p)
	if clean == "/" {
		fd, err := unix.Dup(r.fd)
		return fd, ".", err
	}

	dir, base := path.Split(clean)
	fd, err := r.openDir(dir)
	return fd, base, err
}

// resolve follows symlinks in the last name of p, inside the root, until it
// names something that is not a symlink, and returns that path.
func (r *Root) resolve(p string) (string, error) {
	p = path.Clean("/" + p)
	for range maxSymlinks {
		dirfd, base, err := r.openParent(p)
		if err != nil {
			return "", err
		}

		target, err := readlinkAt(dirfd, base)
		unix.Close(dirfd)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		p = joinLink(p, target)
	}
	return "", unix.ELOOP
}

// joinLink is where a symlink at p pointing to target leads, inside the root.
func joinLink(p, target string) string {
	if path.IsAbs(target) {
		return path.Clean(target)
	}
	return path.Join(path.Dir(p), target)
}

func readlinkAt(dirfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// relative turns a path inside the root into one openat2 accepts; "/" and
// "" both mean the root itself.
func relative(p string) string {
	p = strings.TrimLeft(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// fstatAt stats name in dirfd without following a final symlink.
func fstatAt(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}
