package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoRuntime means none of the usual CRI sockets answered.
var ErrNoRuntime = errors.New("no CRI runtime found")

// Candidate is a place where a distribution puts its CRI socket.
type Candidate struct {
	// Distribution names who puts a socket there, for logs and errors.
	Distribution string

	// Path is the socket's absolute path on the node.
	Path string
}

// Candidates are the usual CRI sockets, in the order they are tried:
// plain containerd first, then the distributions that run their own.
var Candidates = []Candidate{
	{"containerd", "/run/containerd/containerd.sock"},
	{"k3s/rke2", "/run/k3s/containerd/containerd.sock"},
	{"k0s", "/run/k0s/containerd.sock"},
	{"microk8s", "/var/snap/microk8s/common/run/containerd.sock"},
	{"cri-o", "/run/crio/crio.sock"},
	{"cri-o", "/var/run/crio/crio.sock"},
	{"cri-dockerd", "/run/cri-dockerd.sock"},
	{"cri-dockerd", "/var/run/cri-dockerd.sock"},
}

// Detect dials the candidate sockets under root ("/" on a node, a test
// folder in tests) and returns a client for the first one that speaks
// CRI. Sockets that are missing, dead or not CRI are skipped.
func Detect(ctx context.Context, root string, candidates []Candidate) (*Client, error) {
	var tried []string
	for _, c := range candidates {
		path := filepath.Join(root, c.Path)
		if !isSocket(path) {
			continue
		}

		client, err := Dial(ctx, "unix://"+path)
		if err == nil {
			return client, nil
		}
		tried = append(tried, fmt.Sprintf("%s (%s): %v", path, c.Distribution, err))
	}

	if len(tried) == 0 {
		return nil, fmt.Errorf("%w: no socket at any usual path under %s; give --runtime-endpoint",
			ErrNoRuntime, root)
	}
	return nil, fmt.Errorf("%w: %s; give --runtime-endpoint", ErrNoRuntime, strings.Join(tried, "; "))
}

func isSocket(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode()&os.ModeSocket != 0
}
