package images

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tarTree writes every entry under rootfs to w in lexical order with fixed
// mtimes, keeping modes, ownership and symlinks.
func tarTree(w io.Writer, rootfs string, spec Spec) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(rootfs, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, path)
		if err != nil || rel == "." {
			return err
		}
		return addEntry(tw, path, filepath.ToSlash(rel), spec)
	})
	if err != nil {
		return fmt.Errorf("walk %s: %w", rootfs, err)
	}
	return tw.Close()
}

func addEntry(tw *tar.Writer, path, rel string, spec Spec) error {
	info, err := os.Lstat(path)
	if err != nil {
		return err
	}

	hdr, err := header(path, rel, info)
	if err != nil || hdr == nil {
		return err
	}
	owner := ownerOf(rel, info, spec)
	hdr.Uid, hdr.Gid = owner.UID, owner.GID

	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header for %s: %w", rel, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	return copyFile(tw, path)
}

// header builds a tar header for one entry, or nil for kinds an image layer
// has no use for (sockets, devices, fifos).
func header(path, rel string, info fs.FileInfo) (*tar.Header, error) {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(info.Mode().Perm()),
		ModTime: epoch,
		Format:  tar.FormatPAX,
	}
	if info.Mode()&fs.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	if info.Mode()&fs.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if info.Mode()&fs.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}

	switch {
	case info.Mode().IsRegular():
		hdr.Typeflag = tar.TypeReg
		hdr.Size = info.Size()
	case info.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	default:
		return nil, nil
	}
	return hdr, nil
}

// ownerOf picks the owner from spec.Owners (longest prefix), then spec.Owner,
// then the file's own uid/gid.
func ownerOf(rel string, info fs.FileInfo, spec Spec) Owner {
	best := -1
	var owner Owner
	for prefix, o := range spec.Owners {
		prefix = strings.Trim(prefix, "/")
		if rel != prefix && !strings.HasPrefix(rel, prefix+"/") {
			continue
		}
		if len(prefix) > best {
			best, owner = len(prefix), o
		}
	}
	if best >= 0 {
		return owner
	}
	if spec.Owner != nil {
		return *spec.Owner
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return Owner{}
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()

	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("copy %s: %w", path, err)
	}
	return nil
}
