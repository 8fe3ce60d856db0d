package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
)

// ErrImageMissing means the tool image is not in the agent's namespace.
var ErrImageMissing = errors.New("image not present")

// toolImage is an image ready to run a tool container from.
type toolImage struct {
	image containerd.Image
	imageInfo
}

// imageInfo is what a session needs from an image's content.
type imageInfo struct {
	process ProcessConfig
	// chainID names the snapshot of the image's unpacked layers.
	chainID string
}

// imageCache remembers image info by manifest digest, so a session does not
// read the content store again for an image it has already used.
type imageCache struct {
	client *containerd.Client

	mu    sync.Mutex
	infos map[digest.Digest]imageInfo
}

func newImageCache(client *containerd.Client) *imageCache {
	return &imageCache{client: client, infos: map[digest.Digest]imageInfo{}}
}

// importTar imports an OCI or docker image tar and unpacks it. It uses the
// content and image services, not the transfer service, so containerd 1.6
// works too. It returns the name of the first image in the tar.
func (c *imageCache) importTar(ctx context.Context, path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open toolbox tar: %w", err)
	}
	defer file.Close()

	imported, err := c.client.Import(ctx, file)
	if err != nil {
		return "", fmt.Errorf("import image tar %s: %w", path, err)
	}
	if len(imported) == 0 {
		return "", fmt.Errorf("image tar %s holds no named image", path)
	}

	for _, img := range imported {
		image := containerd.NewImage(c.client, img)
		if err := image.Unpack(ctx, ""); err != nil {
			return "", fmt.Errorf("unpack image %s: %w", img.Name, err)
		}
	}
	return imported[0].Name, nil
}

// get returns the named image, unpacked, with its process config.
func (c *imageCache) get(ctx context.Context, ref string) (*toolImage, error) {
	image, err := c.client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s is not in containerd namespace %s on this node; import it with `ctr -n %s images import`",
			ErrImageMissing, ref, Namespace, Namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("look up image %s: %w", ref, err)
	}

	info, err := c.info(ctx, image)
	if err != nil {
		return nil, err
	}
	return &toolImage{image: image, imageInfo: info}, nil
}

func (c *imageCache) info(ctx context.Context, image containerd.Image) (imageInfo, error) {
	key := image.Target().Digest

	c.mu.Lock()
	cached, ok := c.infos[key]
	c.mu.Unlock()
	if ok {
		return cached, nil
	}

	info, err := readImageInfo(ctx, image)
	if err != nil {
		return imageInfo{}, err
	}

	c.mu.Lock()
	c.infos[key] = info
	c.mu.Unlock()
	return info, nil
}

func readImageInfo(ctx context.Context, image containerd.Image) (imageInfo, error) {
	if err := unpack(ctx, image); err != nil {
		return imageInfo{}, err
	}

	spec, err := image.Spec(ctx)
	if err != nil {
		return imageInfo{}, fmt.Errorf("read config of image %s: %w", image.Name(), err)
	}

	diffIDs, err := image.RootFS(ctx)
	if err != nil {
		return imageInfo{}, fmt.Errorf("read layers of image %s: %w", image.Name(), err)
	}

	return imageInfo{
		process: ProcessConfig{
			Entrypoint: spec.Config.Entrypoint,
			Cmd:        spec.Config.Cmd,
			Env:        spec.Config.Env,
			WorkingDir: spec.Config.WorkingDir,
		},
		chainID: identity.ChainID(diffIDs).String(),
	}, nil
}

func unpack(ctx context.Context, image containerd.Image) error {
	unpacked, err := image.IsUnpacked(ctx, "")
	if err != nil {
		return fmt.Errorf("check image %s is unpacked: %w", image.Name(), err)
	}
	if unpacked {
		return nil
	}

	if err := image.Unpack(ctx, ""); err != nil {
		return fmt.Errorf("unpack image %s: %w", image.Name(), err)
	}
	return nil
}
