// Package images builds small OCI image-layout tars from rootfs folders, so
// tests and the agent's --toolbox-tar never need a registry.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	// go-digest hashes with whatever crypto/sha256 registers.
	_ "crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// epoch is the mtime of every entry, so the same rootfs always gives the same
// digests and containerd can skip layers it already has.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Owner is a numeric uid/gid pair for files in a layer.
type Owner struct {
	UID int
	GID int
}

// Spec describes the image to write from a rootfs folder.
type Spec struct {
	// Ref is the full image name, e.g. nodedebug.local/toolbox:latest.
	Ref string
	// Config is the runtime config: User, Cmd, Entrypoint, Env, WorkingDir.
	Config ocispec.ImageConfig
	// Owner, when set, owns every entry not matched by Owners.
	Owner *Owner
	// Owners maps a rootfs-relative path (no leading slash) to the owner of
	// that entry and everything below it. The longest match wins.
	Owners map[string]Owner
	// Gzip compresses the layer.
	Gzip bool
}

// Write lays the rootfs folder into a single layer and writes an OCI
// image-layout tar to out.
func Write(rootfs, out string, spec Spec) error {
	layer, diffID, err := buildLayer(rootfs, spec)
	if err != nil {
		return fmt.Errorf("build layer from %s: %w", rootfs, err)
	}

	blobs, index, err := assemble(layer, diffID, spec)
	if err != nil {
		return fmt.Errorf("assemble image %s: %w", spec.Ref, err)
	}

	if err := writeLayout(out, blobs, index); err != nil {
		return fmt.Errorf("write image %s to %s: %w", spec.Ref, out, err)
	}
	return nil
}

type blob struct {
	digest digest.Digest
	data   []byte
}

func newBlob(data []byte) blob {
	return blob{digest: digest.FromBytes(data), data: data}
}

// assemble builds the config, manifest and index around one layer.
func assemble(layer []byte, diffID digest.Digest, spec Spec) ([]blob, []byte, error) {
	layerBlob := newBlob(layer)
	layerType := ocispec.MediaTypeImageLayer
	if spec.Gzip {
		layerType = ocispec.MediaTypeImageLayerGzip
	}

	config, err := json.Marshal(imageConfig(spec, diffID))
	if err != nil {
		return nil, nil, fmt.Errorf("marshal config: %w", err)
	}
	configBlob := newBlob(config)

	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptor(ocispec.MediaTypeImageConfig, configBlob),
		Layers:    []ocispec.Descriptor{descriptor(layerType, layerBlob)},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("marshal manifest: %w", err)
	}
	manifestBlob := newBlob(manifest)

	desc := descriptor(ocispec.MediaTypeImageManifest, manifestBlob)
	desc.Annotations = map[string]string{
		"io.containerd.image.name": spec.Ref,
		ocispec.AnnotationRefName:  refName(spec.Ref),
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{desc},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("marshal index: %w", err)
	}
	return []blob{layerBlob, configBlob, manifestBlob}, index, nil
}

func imageConfig(spec Spec, diffID digest.Digest) ocispec.Image {
	created := epoch
	return ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   spec.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
}

func descriptor(mediaType string, b blob) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: b.digest, Size: int64(len(b.data))}
}

// refName returns the tag of a reference, which is what the OCI layout spec
// expects in org.opencontainers.image.ref.name.
func refName(ref string) string {
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[colon+1:]
	}
	return "latest"
}

// writeLayout writes the oci-layout, index.json and blobs into a tar file.
func writeLayout(out string, blobs []blob, index []byte) (retErr error) {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if err := f.Close(); err != nil && retErr == nil {
			retErr = err
		}
	}()

	tw := tar.NewWriter(f)
	files := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{ocispec.ImageIndexFile, index},
	}
	for _, b := range blobs {
		name := filepath.Join(ocispec.ImageBlobsDir, b.digest.Algorithm().String(), b.digest.Encoded())
		files = append(files, struct {
			name string
			data []byte
		}{name, b.data})
	}

	for _, file := range files {
		if err := writeFile(tw, file.name, file.data); err != nil {
			return fmt.Errorf("add %s: %w", file.name, err)
		}
	}
	return tw.Close()
}

func writeFile(tw *tar.Writer, name string, data []byte) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		Size:     int64(len(data)),
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// buildLayer tars the rootfs and returns the (maybe compressed) layer and the
// digest of the uncompressed tar, which is the diff ID.
func buildLayer(rootfs string, spec Spec) ([]byte, digest.Digest, error) {
	var raw bytes.Buffer
	if err := tarTree(&raw, rootfs, spec); err != nil {
		return nil, "", err
	}
	diffID := digest.FromBytes(raw.Bytes())
	if !spec.Gzip {
		return raw.Bytes(), diffID, nil
	}

	var packed bytes.Buffer
	zw, err := gzip.NewWriterLevel(&packed, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	if _, err := io.Copy(zw, &raw); err != nil {
		return nil, "", fmt.Errorf("compress layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("compress layer: %w", err)
	}
	return packed.Bytes(), diffID, nil
}
