package images

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// file is one entry to create in a rootfs folder.
type file struct {
	path     string
	mode     os.FileMode
	dir      bool
	data     string
	copyFrom string
	link     string
}

// layout creates a fresh rootfs folder holding files, in order.
func layout(rootfs string, files []file) error {
	if err := os.RemoveAll(rootfs); err != nil {
		return err
	}
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}

	for _, f := range files {
		if err := create(filepath.Join(rootfs, f.path), f); err != nil {
			return fmt.Errorf("create %s: %w", f.path, err)
		}
	}
	return nil
}

func create(path string, f file) error {
	switch {
	case f.link != "":
		return os.Symlink(f.link, path)
	case f.dir:
		if err := os.Mkdir(path, f.mode); err != nil {
			return err
		}
	case f.copyFrom != "":
		if err := copyTo(f.copyFrom, path); err != nil {
			return err
		}
	default:
		if err := os.WriteFile(path, []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	// Chmod again: the umask trims what Mkdir and WriteFile set.
	return os.Chmod(path, f.mode)
}

func copyTo(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()

	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
