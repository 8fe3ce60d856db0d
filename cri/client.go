// Package cri finds debug targets through a container runtime's CRI socket.
//
// It knows the labels kubelet puts on pod sandboxes and containers, so a
// user's pod/container name resolves to the runtime's container id and host
// pid without asking the Kubernetes API server.
package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	// ErrSocketMissing means no socket exists at the runtime endpoint.
	ErrSocketMissing = errors.New("CRI socket not found")

	// ErrNotCRI means something answers on the socket, but not the CRI API.
	ErrNotCRI = errors.New("not a CRI endpoint")
)

// dialTimeout bounds the first Version call, which tells a dead or foreign
// socket from a working runtime.
const dialTimeout = 5 * time.Second

// Client talks to one runtime's CRI RuntimeService.
type Client struct {
	// Endpoint is the unix socket path the client dialed.
	Endpoint string

	// Version is what the runtime reported when the client connected.
	Version *runtimeapi.VersionResponse

	conn    *grpc.ClientConn
	runtime runtimeapi.RuntimeServiceClient
}

// SocketPath turns "unix:///run/x.sock" or "/run/x.sock" into a file path.
func SocketPath(endpoint string) (string, error) {
	path, found := strings.CutPrefix(endpoint, "unix://")
	if !found && strings.Contains(endpoint, "://") {
		return "", fmt.Errorf("endpoint %q: only unix:// endpoints are supported", endpoint)
	}
	if path == "" {
		return "", fmt.Errorf("endpoint %q has no socket path", endpoint)
	}
	return path, nil
}

// Dial connects to the CRI socket at endpoint and checks that it speaks CRI.
func Dial(ctx context.Context, endpoint string) (*Client, error) {
	path, err := SocketPath(endpoint)
	if err != nil {
		return nil, err
	}

	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w at %s (is the runtime running, and is its socket mounted?): %w",
			ErrSocketMissing, path, err)
	}

	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("connect to CRI socket %s: %w", path, err)
	}

	c := &Client{Endpoint: path, conn: conn, runtime: runtimeapi.NewRuntimeServiceClient(conn)}
	if err := c.readVersion(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) readVersion(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()

	version, err := c.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("socket %s is %w: it does not serve runtime.v1.RuntimeService", c.Endpoint, ErrNotCRI)
	}
	if err != nil {
		return fmt.Errorf("ask CRI socket %s for its version: %w", c.Endpoint, err)
	}

	c.Version = version
	return nil
}

// RuntimeName is the runtime's own name, such as "containerd" or "cri-o".
func (c *Client) RuntimeName() string {
	return c.Version.GetRuntimeName()
}

// Close releases the connection.
func (c *Client) Close() error {
	return c.conn.Close()
}

// Runtime exposes the raw CRI RuntimeService for paths that create
// containers through CRI itself.
func (c *Client) Runtime() runtimeapi.RuntimeServiceClient {
	return c.runtime
}
