package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/nodedebug/nodedebug/test/images"
)

// CRINamespace is the containerd namespace CRI keeps pods and images in.
const CRINamespace = "k8s.io"

// ImageTar is one built image: its ref and its OCI layout tar.
type ImageTar struct {
	Ref  string
	Path string
}

// Images are the test images BuildImages writes.
type Images struct {
	Toolbox ImageTar
	Pause   ImageTar
	Target  ImageTar
}

// All lists every image, pause first since pods need it before anything.
func (i Images) All() []ImageTar {
	return []ImageTar{i.Pause, i.Target, i.Toolbox}
}

// BuildImages builds the pause and target binaries with go build and writes
// all three image tars into dir. The current directory must be inside the
// nodedebug module.
func BuildImages(ctx context.Context, dir string) (Images, error) {
	imgs := Images{
		Toolbox: ImageTar{Ref: images.ToolboxRef, Path: filepath.Join(dir, "toolbox.tar")},
		Pause:   ImageTar{Ref: images.PauseRef, Path: filepath.Join(dir, "pause.tar")},
		Target:  ImageTar{Ref: images.TargetRef, Path: filepath.Join(dir, "target.tar")},
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return imgs, fmt.Errorf("create %s: %w", bin, err)
	}

	pause := filepath.Join(bin, "pause")
	if err := images.BuildBinary(ctx, images.PausePackage, pause); err != nil {
		return imgs, err
	}
	target := filepath.Join(bin, "target")
	if err := images.BuildBinary(ctx, images.TargetPackage, target); err != nil {
		return imgs, err
	}

	if err := images.Pause(dir, pause, imgs.Pause.Path); err != nil {
		return imgs, fmt.Errorf("build pause image: %w", err)
	}
	if err := images.Target(dir, target, imgs.Target.Path); err != nil {
		return imgs, fmt.Errorf("build target image: %w", err)
	}
	if err := images.Toolbox(ctx, dir, "/usr/bin/busybox", imgs.Toolbox.Path); err != nil {
		return imgs, fmt.Errorf("build toolbox image: %w", err)
	}
	return imgs, nil
}

// NewClient connects a containerd client to this daemon. The caller closes
// it.
func (c *Containerd) NewClient(namespace string) (*client.Client, error) {
	cli, err := client.New(c.Socket, client.WithDefaultNamespace(namespace))
	if err != nil {
		return nil, fmt.Errorf("connect containerd client to %s: %w", c.Socket, err)
	}
	return cli, nil
}

// ImportImage imports an OCI layout tar into namespace and unpacks it for
// overlayfs. It uses the client-side import rather than the transfer
// service, which containerd 1.6 does not have.
func (c *Containerd) ImportImage(ctx context.Context, namespace, tarPath string) error {
	cli, err := c.NewClient(namespace)
	if err != nil {
		return err
	}
	defer cli.Close()

	f, err := os.Open(tarPath)
	if err != nil {
		return fmt.Errorf("open image %s: %w", tarPath, err)
	}
	defer f.Close()

	ctx = namespaces.WithNamespace(ctx, namespace)
	imported, err := cli.Import(ctx, f)
	if err != nil {
		return fmt.Errorf("import image %s: %w", tarPath, err)
	}

	for _, img := range imported {
		image := client.NewImage(cli, img)
		if err := image.Unpack(ctx, "overlayfs"); err != nil {
			return fmt.Errorf("unpack image %s: %w", img.Name, err)
		}
	}
	return nil
}

// ImportImages imports every image into the CRI namespace.
func (c *Containerd) ImportImages(ctx context.Context, imgs Images) error {
	for _, img := range imgs.All() {
		started := time.Now()
		if err := c.ImportImage(ctx, CRINamespace, img.Path); err != nil {
			return err
		}
		c.log.Info("imported image", "image", img.Ref, "took", time.Since(started).Round(time.Millisecond))
	}
	return nil
}
