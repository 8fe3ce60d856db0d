package fsroot

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// UnpackOptions says how entries are written.
type UnpackOptions struct {
	// Chown keeps the owners in the tar; it needs root.
	Chown bool
}

// Destination is where a tar stream goes: into Dir keeping entry names, or,
// when Rename is set, with the first name of every entry replaced by it,
// like `cp -r src dst` when dst does not exist yet.
type Destination struct {
	Dir    string
	Rename string
}

// Destination reads dst the way cp does: an existing folder receives the
// entries; otherwise its parent must exist and the copy takes dst's name.
func (r *Root) Destination(dst string) (Destination, error) {
	resolved, err := r.resolve(dst)
	if err != nil {
		return Destination{}, fmt.Errorf("resolve %s in %s: %w", dst, r.name, err)
	}

	fd, err := r.openDir(resolved)
	if err == nil {
		unix.Close(fd)
		return Destination{Dir: resolved}, nil
	}
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
		return Destination{}, fmt.Errorf("open %s in %s: %w", dst, r.name, err)
	}

	dir, base := path.Split(resolved)
	fd, err = r.openDir(dir)
	if err != nil {
		return Destination{}, fmt.Errorf("open folder %s in %s: %w", dir, r.name, err)
	}
	unix.Close(fd)
	return Destination{Dir: dir, Rename: base}, nil
}

// Unpack writes the tar stream in src to dst. Each file appears
// atomically: it is written to a temporary name in its folder, then
// renamed. An entry whose name or whose path through symlinks would leave
// dst.Dir is refused.
func (r *Root) Unpack(src io.Reader, dst Destination, opts UnpackOptions) (Stats, error) {
	dirfd, err := r.openDir(dst.Dir)
	if err != nil {
		return Stats{}, fmt.Errorf("open folder %s in %s: %w", dst.Dir, r.name, err)
	}
	defer unix.Close(dirfd)

	u := &unpacker{dirfd: dirfd, dst: dst, opts: opts}
	tr := tar.NewReader(src)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return u.stats, nil
		}
		if err != nil {
			return u.stats, fmt.Errorf("read tar stream for %s: %w", r.name, err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return u.stats, fmt.Errorf("write %s into %s: %w", hdr.Name, r.name, err)
		}
	}
}

type unpacker struct {
	dirfd int
	dst   Destination
	opts  UnpackOptions
	stats Stats
}

// EntryPath is where a tar entry goes relative to the destination folder,
// or ErrEscapes when its name leaves it.
func EntryPath(name, rename string) (string, error) {
	if path.IsAbs(name) || slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("entry %q %w", name, ErrEscapes)
	}

	clean := path.Clean(name)
	if clean == "." && rename == "" {
		return ".", nil
	}
	if rename == "" {
		return clean, nil
	}

	_, rest, _ := strings.Cut(clean, "/")
	if clean == "." || rest == "" {
		return rename, nil
	}
	return path.Join(rename, rest), nil
}

func (u *unpacker) entry(hdr *tar.Header, body io.Reader) error {
	rel, err := EntryPath(hdr.Name, u.dst.Rename)
	if err != nil {
		return err
	}

	parent, base, err := u.openParent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(parent)

	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.dir(parent, base, hdr)
	case tar.TypeReg:
		return u.file(parent, base, hdr, body)
	case tar.TypeSymlink:
		return u.symlink(parent, base, hdr)
	}
	return fmt.Errorf("entry type %q is not supported; copy regular files, folders and symlinks", hdr.Typeflag)
}

// openParent opens the folder of rel beneath the destination: symlinks
// inside it are followed only while they stay beneath it.
func (u *unpacker) openParent(rel string) (int, string, error) {
	if rel == "." {
		fd, err := unix.Dup(u.dirfd)
		return fd, ".", err
	}

	dir, base := path.Split(rel)
	fd, err := openIn(u.dirfd, relative(dir), unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_MAGICLINKS)
	if errors.Is(err, unix.EXDEV) {
		return -1, "", fmt.Errorf("folder %s %w through a symlink", dir, ErrEscapes)
	}
	if err != nil {
		return -1, "", fmt.Errorf("open folder %s: %w", dir, err)
	}
	return fd, base, nil
}

func (u *unpacker) dir(parent int, name string, hdr *tar.Header) error {
	err := unix.Mkdirat(parent, name, 0o700)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create folder: %w", err)
	}

	fd, err := openIn(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, unix.RESOLVE_BENEATH)
	if err != nil {
		return fmt.Errorf("open folder (is something else in the way?): %w", err)
	}
	defer unix.Close(fd)
	return u.setAttrs(fd, hdr)
}

// setAttrs applies owner, then mode: chown clears setuid bits.
func (u *unpacker) setAttrs(fd int, hdr *tar.Header) error {
	if u.opts.Chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("set owner %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("set mode %o: %w", hdr.Mode, err)
	}
	return nil
}

func (u *unpacker) file(parent int, name string, hdr *tar.Header, body io.Reader) error {
	mounted, err := mountPointAt(parent, name)
	if err != nil {
		return err
	}
	if mounted {
		return u.fileInPlace(parent, name, hdr, body)
	}

	tmp := tempName(name)
	fd, err := unix.Openat(parent, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer f.Close()

	if err := u.fill(f, hdr, body); err != nil {
		_ = unix.Unlinkat(parent, tmp, 0)
		return err
	}
	if err := unix.Renameat(parent, tmp, parent, name); err != nil {
		_ = unix.Unlinkat(parent, tmp, 0)
		return fmt.Errorf("rename into place: %w", err)
	}

	u.stats.Files++
	u.stats.Bytes += hdr.Size
	return nil
}

func (u *unpacker) fill(f *os.File, hdr *tar.Header, body io.Reader) error {
	if _, err := io.Copy(f, body); err != nil {
		return fmt.Errorf("write content: %w", err)
	}
	if err := u.setAttrs(int(f.Fd()), hdr); err != nil {
		return err
	}

	// As tar does: the copy keeps the time the file was last changed.
	if !hdr.ModTime.IsZero() {
		mtime := unix.NsecToTimeval(hdr.ModTime.UnixNano())
		if err := unix.Futimes(int(f.Fd()), []unix.Timeval{mtime, mtime}); err != nil {
			return fmt.Errorf("set modification time: %w", err)
		}
	}
	return f.Sync()
}

// fileInPlace writes over a file that is a mount point of its own, such as
// a ConfigMap subPath file: renaming over it would quietly detach the mount
// from the container's processes. It keeps the file's inode, mode and
// owner, and a read-only mount refuses the write.
func (u *unpacker) fileInPlace(parent int, name string, hdr *tar.Header, body io.Reader) error {
	fd, err := openIn(parent, name, unix.O_WRONLY|unix.O_NOFOLLOW, unix.RESOLVE_BENEATH)
	if err != nil {
		return fmt.Errorf("open mounted file %s to write it in place: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()

	if _, err := io.Copy(f, body); err != nil {
		return fmt.Errorf("write mounted file %s in place: %w", name, err)
	}
	if err := f.Truncate(hdr.Size); err != nil {
		return fmt.Errorf("truncate mounted file %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}

	u.stats.Files++
	u.stats.Bytes += hdr.Size
	return nil
}

// mountPointAt reports whether parent/name exists and is mounted over.
func mountPointAt(parent int, name string) (bool, error) {
	fd, err := openIn(parent, name, unix.O_PATH|unix.O_NOFOLLOW, unix.RESOLVE_BENEATH)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look at %s: %w", name, err)
	}
	defer unix.Close(fd)
	return isMountPoint(parent, fd)
}

func (u *unpacker) symlink(parent int, name string, hdr *tar.Header) error {
	mounted, err := mountPointAt(parent, name)
	if err != nil {
		return err
	}
	if mounted {
		return fmt.Errorf("%s is a mount point of its own; a symlink cannot replace it without detaching the mount", name)
	}

	tmp := tempName(name)
	if err := unix.Symlinkat(hdr.Linkname, parent, tmp); err != nil {
		return fmt.Errorf("create symlink: %w", err)
	}

	if u.opts.Chown {
		if err := unix.Fchownat(parent, tmp, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			_ = unix.Unlinkat(parent, tmp, 0)
			return fmt.Errorf("set owner of symlink: %w", err)
		}
	}
	if err := unix.Renameat(parent, tmp, parent, name); err != nil {
		_ = unix.Unlinkat(parent, tmp, 0)
		return fmt.Errorf("rename symlink into place: %w", err)
	}
	u.stats.Files++
	return nil
}

// tempName is a hidden name next to name that no one else uses.
func tempName(name string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "." + name + ".nodedebug-" + hex.EncodeToString(b[:])
}
