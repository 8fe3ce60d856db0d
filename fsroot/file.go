package fsroot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// File is a regular file read whole, with what a write-back must keep.
type File struct {
	// Path is where the file is after following symlinks inside the root.
	Path    string
	Content []byte
	SHA256  string
	Mode    uint32
	UID     int
	GID     int
	// MountPoint is set when the file is itself mounted, such as a
	// single-file bind mount: renaming over it would not reach the process.
	MountPoint bool
}

// ErrTooLarge marks a file bigger than the caller allows.
var ErrTooLarge = errors.New("is too large")

// ReadFile reads the regular file at p, following symlinks inside the root.
func (r *Root) ReadFile(p string, maxSize int64) (*File, error) {
	h, err := r.openFile(p)
	if err != nil {
		return nil, err
	}
	defer h.close()

	if h.st.Size > maxSize {
		return nil, fmt.Errorf("%s in %s %w: %d bytes, the limit is %d", p, r.name, ErrTooLarge, h.st.Size, maxSize)
	}
	content, err := io.ReadAll(io.LimitReader(h.file, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", p, r.name, err)
	}

	sum := sha256.Sum256(content)
	return &File{
		Path:       h.path,
		Content:    content,
		SHA256:     hex.EncodeToString(sum[:]),
		Mode:       h.st.Mode & 0o7777,
		UID:        int(h.st.Uid),
		GID:        int(h.st.Gid),
		MountPoint: h.mountPoint,
	}, nil
}

// handle is an open regular file and the folder it is in.
type handle struct {
	path       string
	parent     int
	name       string
	file       *os.File
	st         unix.Stat_t
	mountPoint bool
}

func (h *handle) close() {
	h.file.Close()
	unix.Close(h.parent)
}

// openFile opens the regular file at p for reading, with its folder.
func (r *Root) openFile(p string) (*handle, error) {
	resolved, err := r.resolve(p)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in %s: %w", p, r.name, err)
	}

	parent, name, err := r.openParent(resolved)
	if err != nil {
		return nil, fmt.Errorf("open folder of %s in %s: %w", p, r.name, err)
	}
	h, err := openRegular(parent, name)
	if err != nil {
		unix.Close(parent)
		return nil, fmt.Errorf("open %s in %s: %w", p, r.name, err)
	}

	h.path = resolved
	return h, nil
}

func openRegular(parent int, name string) (*handle, error) {
	fd, err := openIn(parent, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, unix.RESOLVE_BENEATH)
	if err != nil {
		return nil, err
	}
	h := &handle{parent: parent, name: name, file: os.NewFile(uintptr(fd), name)}

	if err := unix.Fstat(fd, &h.st); err != nil {
		h.file.Close()
		return nil, err
	}
	if h.st.Mode&unix.S_IFMT != unix.S_IFREG {
		h.file.Close()
		return nil, fmt.Errorf("it %w (a folder or a device); give the path of a file", ErrNotFile)
	}

	h.mountPoint, err = isMountPoint(parent, fd)
	if err != nil {
		h.file.Close()
		return nil, err
	}
	return h, nil
}

// isMountPoint compares the mount ids of a file and its folder: they differ
// exactly when the file is mounted over, as a single-file bind mount is.
func isMountPoint(parent, fd int) (bool, error) {
	var dir, file unix.Statx_t
	if err := unix.Statx(parent, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &dir); err != nil {
		return false, fmt.Errorf("read mount id of folder: %w", err)
	}
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &file); err != nil {
		return false, fmt.Errorf("read mount id: %w", err)
	}
	return dir.Mnt_id != file.Mnt_id, nil
}

// WriteResult says how a file was written.
type WriteResult struct {
	Path    string
	InPlace bool
}

// WriteFile replaces the content of the regular file at p, keeping its
// mode and owner, if its content still hashes to wantSHA256. A mount point
// is written in place on the same inode, since a rename would not be seen
// by the process that has it mounted; any other file is replaced
// atomically by a rename.
func (r *Root) WriteFile(p string, content []byte, wantSHA256 string) (*WriteResult, error) {
	h, err := r.openFile(p)
	if err != nil {
		return nil, err
	}
	defer h.close()

	if err := h.check(wantSHA256); err != nil {
		return nil, fmt.Errorf("%s in %s %w; nothing was written: open it again to edit the new content", p, r.name, err)
	}

	result := &WriteResult{Path: h.path, InPlace: h.mountPoint}
	if h.mountPoint {
		err = h.writeInPlace(content)
	} else {
		err = h.replace(content)
	}
	if err != nil {
		return nil, fmt.Errorf("write %s in %s: %w", p, r.name, err)
	}
	return result, nil
}

// check refuses when the content changed since the caller read it.
func (h *handle) check(wantSHA256 string) error {
	hash := sha256.New()
	if _, err := io.Copy(hash, h.file); err != nil {
		return fmt.Errorf("could not be read again: %w", err)
	}
	if hex.EncodeToString(hash.Sum(nil)) != wantSHA256 {
		return ErrChanged
	}
	return nil
}

// writeInPlace keeps the inode: it writes first and truncates after, so a
// reader sees an empty file for as short a time as possible.
func (h *handle) writeInPlace(content []byte) error {
	fd, err := openIn(h.parent, h.name, unix.O_WRONLY|unix.O_NOFOLLOW, unix.RESOLVE_BENEATH)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), h.name)
	defer f.Close()

	if err := sameFile(fd, &h.st); err != nil {
		return err
	}
	if _, err := f.WriteAt(content, 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(content))); err != nil {
		return err
	}
	return f.Sync()
}

func sameFile(fd int, want *unix.Stat_t) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Ino != want.Ino || st.Dev != want.Dev {
		return ErrChanged
	}
	return nil
}

// replace writes a temporary file in the same folder with the old mode and
// owner, then renames it over the old one.
func (h *handle) replace(content []byte) error {
	tmp := tempName(h.name)
	fd, err := unix.Openat(h.parent, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer f.Close()

	if err := fillLike(f, content, &h.st); err != nil {
		_ = unix.Unlinkat(h.parent, tmp, 0)
		return err
	}
	if err := unix.Renameat(h.parent, tmp, h.parent, h.name); err != nil {
		_ = unix.Unlinkat(h.parent, tmp, 0)
		return err
	}
	return nil
}

func fillLike(f *os.File, content []byte, st *unix.Stat_t) error {
	if _, err := io.Copy(f, bytes.NewReader(content)); err != nil {
		return err
	}
	if err := unix.Fchown(int(f.Fd()), int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("keep owner %d:%d: %w", st.Uid, st.Gid, err)
	}
	if err := unix.Fchmod(int(f.Fd()), st.Mode&0o7777); err != nil {
		return fmt.Errorf("keep mode %o: %w", st.Mode&0o7777, err)
	}
	return f.Sync()
}
