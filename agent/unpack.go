package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxBlob bounds one blob of a toolbox tar held in memory.
const maxBlob = 512 << 20

// unpackImageTar lays the first image of an OCI image-layout tar out as a
// rootfs folder at dest, for paths that run the toolbox without a
// runtime, and returns the image's process config.
func unpackImageTar(tarPath, dest string) (ProcessConfig, error) {
	blobs, err := readBlobs(tarPath)
	if err != nil {
		return ProcessConfig{}, fmt.Errorf("read image tar %s: %w", tarPath, err)
	}

	manifest, config, err := firstImage(blobs)
	if err != nil {
		return ProcessConfig{}, fmt.Errorf("find the image in %s: %w", tarPath, err)
	}

	for _, layer := range manifest.Layers {
		if err := applyLayer(blobs, layer, dest); err != nil {
			return ProcessConfig{}, fmt.Errorf("unpack layer %s of %s: %w", layer.Digest, tarPath, err)
		}
	}

	c := config.Config
	return ProcessConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir}, nil
}

// readBlobs reads every regular file of the layout tar by name.
func readBlobs(tarPath string) (map[string][]byte, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return blobs, nil
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size > maxBlob {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		blobs[path.Clean(hdr.Name)] = data
	}
}

func firstImage(blobs map[string][]byte) (ocispec.Manifest, ocispec.Image, error) {
	var index ocispec.Index
	var manifest ocispec.Manifest
	var config ocispec.Image
	if err := decodeBlob(blobs, "index.json", &index); err != nil {
		return manifest, config, err
	}
	if len(index.Manifests) == 0 {
		return manifest, config, errors.New("index.json lists no image")
	}

	if err := decodeBlob(blobs, blobPath(index.Manifests[0]), &manifest); err != nil {
		return manifest, config, err
	}
	err := decodeBlob(blobs, blobPath(manifest.Config), &config)
	return manifest, config, err
}

func blobPath(d ocispec.Descriptor) string {
	return path.Join("blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
}

func decodeBlob(blobs map[string][]byte, name string, v any) error {
	data, ok := blobs[name]
	if !ok {
		return fmt.Errorf("%s is missing", name)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	return nil
}

func applyLayer(blobs map[string][]byte, layer ocispec.Descriptor, dest string) error {
	data, ok := blobs[blobPath(layer)]
	if !ok {
		return errors.New("blob is missing")
	}

	var r io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		r = zr
	}

	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := applyEntry(tr, hdr, dest); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

// applyEntry writes one layer entry below dest; names never escape it.
func applyEntry(r io.Reader, hdr *tar.Header, dest string) error {
	dir, base := path.Split(path.Clean("/" + hdr.Name))
	if base == "" || base == "/" {
		return nil
	}

	parent, err := securejoin.SecureJoin(dest, dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}

	if whiteout, ok := strings.CutPrefix(base, ".wh."); ok {
		if whiteout == ".wh..opq" {
			return nil
		}
		return os.RemoveAll(filepath.Join(parent, whiteout))
	}
	return writeEntry(r, hdr, dest, filepath.Join(parent, base))
}

func writeEntry(r io.Reader, hdr *tar.Header, dest, target string) error {
	mode := os.FileMode(hdr.Mode) & os.ModePerm
	if hdr.Typeflag != tar.TypeDir {
		if err := os.RemoveAll(target); err != nil {
			return err
		}
	}

	var err error
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = os.MkdirAll(target, mode)
	case tar.TypeReg:
		err = writeRegular(r, target, mode)
	case tar.TypeSymlink:
		err = os.Symlink(hdr.Linkname, target)
	case tar.TypeLink:
		err = linkWithin(dest, hdr.Linkname, target)
	default:
		// Devices and fifos are not needed from a toolbox.
		return nil
	}
	if err != nil {
		return err
	}
	return os.Lchown(target, hdr.Uid, hdr.Gid)
}

func writeRegular(r io.Reader, target string, mode os.FileMode) error {
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func linkWithin(dest, name, target string) error {
	source, err := securejoin.SecureJoin(dest, name)
	if err != nil {
		return err
	}
	return os.Link(source, target)
}
