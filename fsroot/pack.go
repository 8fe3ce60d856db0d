package fsroot

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Stats counts what a copy moved.
type Stats struct {
	Files int64
	Bytes int64
}

// Pack writes p and everything under it to w as a tar stream. Entry names
// start with the last name of p. A symlink is written as a symlink, never
// followed, so a link to /etc/shadow copies the link and not the node's
// file; that holds for p itself too.
func (r *Root) Pack(w io.Writer, p string) (Stats, error) {
	dirfd, base, err := r.openParent(p)
	if err != nil {
		return Stats{}, fmt.Errorf("open %s in %s: %w", p, r.name, err)
	}
	defer unix.Close(dirfd)

	pk := &packer{tw: tar.NewWriter(w)}
	if err := pk.entry(dirfd, base, base); err != nil {
		return pk.stats, fmt.Errorf("pack %s of %s: %w", p, r.name, err)
	}
	if err := pk.tw.Close(); err != nil {
		return pk.stats, fmt.Errorf("finish tar of %s: %w", p, err)
	}
	return pk.stats, nil
}

type packer struct {
	tw    *tar.Writer
	stats Stats
}

// entry writes the file called name in dirfd as tarName.
func (pk *packer) entry(dirfd int, name, tarName string) error {
	st, err := fstatAt(dirfd, name)
	if err != nil {
		return fmt.Errorf("stat %s: %w", tarName, err)
	}

	hdr := header(&st, tarName)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return pk.dir(dirfd, name, hdr)
	case unix.S_IFREG:
		return pk.file(dirfd, name, hdr, &st)
	case unix.S_IFLNK:
		return pk.symlink(dirfd, name, hdr)
	case unix.S_IFSOCK:
		// A socket cannot be stored in a tar; it only means something to
		// the process that listens on it.
		return nil
	}
	return pk.tw.WriteHeader(hdr)
}

// header fills what every kind of entry shares: owner, mode, time.
func header(st *unix.Stat_t, name string) *tar.Header {
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()).UTC(),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
	case unix.S_IFCHR:
		hdr.Typeflag = tar.TypeChar
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	}
	if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	}
	return hdr
}

func (pk *packer) dir(dirfd int, name string, hdr *tar.Header) error {
	fd, err := openIn(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, unix.RESOLVE_BENEATH)
	if err != nil {
		return fmt.Errorf("open folder %s: %w", hdr.Name, err)
	}
	dir := os.NewFile(uintptr(fd), hdr.Name)
	defer dir.Close()

	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list folder %s: %w", hdr.Name, err)
	}
	slices.Sort(names)

	hdr.Name += "/"
	if err := pk.tw.WriteHeader(hdr); err != nil {
		return err
	}
	for _, child := range names {
		if err := pk.entry(fd, child, path.Join(hdr.Name, child)); err != nil {
			return err
		}
	}
	return nil
}

func (pk *packer) file(dirfd int, name string, hdr *tar.Header, want *unix.Stat_t) error {
	fd, err := openIn(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, unix.RESOLVE_BENEATH)
	if err != nil {
		return fmt.Errorf("open %s: %w", hdr.Name, err)
	}
	f := os.NewFile(uintptr(fd), hdr.Name)
	defer f.Close()

	// The name may have been swapped for something else since the stat.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != want.Ino || st.Dev != want.Dev {
		return fmt.Errorf("%s changed while it was being copied", hdr.Name)
	}

	hdr.Typeflag = tar.TypeReg
	hdr.Size = st.Size
	if err := pk.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyN(pk.tw, f, st.Size)
	if err != nil {
		return fmt.Errorf("copy %s (%d of %d bytes): %w", hdr.Name, n, st.Size, err)
	}

	pk.stats.Files++
	pk.stats.Bytes += n
	return nil
}

func (pk *packer) symlink(dirfd int, name string, hdr *tar.Header) error {
	target, err := readlinkAt(dirfd, name)
	if err != nil {
		return fmt.Errorf("read symlink %s: %w", hdr.Name, err)
	}

	hdr.Typeflag = tar.TypeSymlink
	hdr.Linkname = target
	pk.stats.Files++
	return pk.tw.WriteHeader(hdr)
}
