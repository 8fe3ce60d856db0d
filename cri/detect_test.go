package cri

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime answers CRI Version like a runtime would, and nothing else.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	name string
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: f.name, RuntimeVersion: "1.2.3", RuntimeApiVersion: "v1"}, nil
}

// socketKind is what a test lays out at one candidate path.
type socketKind int

const (
	criSocket  socketKind = iota // a runtime answering CRI Version
	grpcNoCRI                    // a gRPC server without the CRI service
	deadSocket                   // a socket file nobody listens on
	plainFile                    // a regular file where a socket should be
)

func layOut(t *testing.T, root, path string, kind socketKind, name string) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}

	if kind == plainFile {
		if err := os.WriteFile(full, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}

	listener, err := net.Listen("unix", full)
	if err != nil {
		t.Fatal(err)
	}
	if kind == deadSocket {
		listener.(*net.UnixListener).SetUnlinkOnClose(false)
		listener.Close()
		return
	}

	server := grpc.NewServer()
	if kind == criSocket {
		runtimeapi.RegisterRuntimeServiceServer(server, &fakeRuntime{name: name})
	}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
}

func TestDetectPicksFirstAnsweringRuntime(t *testing.T) {
	type socket struct {
		path string
		kind socketKind
		name string
	}
	tests := []struct {
		name     string
		sockets  []socket
		wantPath string
		wantName string
	}{
		{
			name:     "containerd",
			sockets:  []socket{{"/run/containerd/containerd.sock", criSocket, "containerd"}},
			wantPath: "/run/containerd/containerd.sock", wantName: "containerd",
		},
		{
			name: "k3s behind a dead containerd socket",
			sockets: []socket{
				{"/run/containerd/containerd.sock", deadSocket, ""},
				{"/run/k3s/containerd/containerd.sock", criSocket, "containerd"},
			},
			wantPath: "/run/k3s/containerd/containerd.sock", wantName: "containerd",
		},
		{
			name: "k0s when containerd's path holds a plain file",
			sockets: []socket{
				{"/run/containerd/containerd.sock", plainFile, ""},
				{"/run/k0s/containerd.sock", criSocket, "containerd"},
				{"/run/crio/crio.sock", criSocket, "cri-o"},
			},
			wantPath: "/run/k0s/containerd.sock", wantName: "containerd",
		},
		{
			name: "cri-o behind a gRPC server that is not CRI",
			sockets: []socket{
				{"/run/k3s/containerd/containerd.sock", grpcNoCRI, ""},
				{"/var/run/crio/crio.sock", criSocket, "cri-o"},
			},
			wantPath: "/var/run/crio/crio.sock", wantName: "cri-o",
		},
		{
			name:     "cri-dockerd",
			sockets:  []socket{{"/run/cri-dockerd.sock", criSocket, "docker"}},
			wantPath: "/run/cri-dockerd.sock", wantName: "docker",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Short, because unix socket paths are limited to 108 bytes.
			root, err := os.MkdirTemp("", "detect")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(root) })
			for _, s := range tt.sockets {
				layOut(t, root, s.path, s.kind, s.name)
			}

			client, err := Detect(context.Background(), root, Candidates)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			defer client.Close()

			if want := filepath.Join(root, tt.wantPath); client.Endpoint != want {
				t.Errorf("endpoint = %s, want %s", client.Endpoint, want)
			}
			if client.RuntimeName() != tt.wantName {
				t.Errorf("runtime = %s, want %s", client.RuntimeName(), tt.wantName)
			}
		})
	}
}

func TestDetectFailsWithoutRuntime(t *testing.T) {
	root := t.TempDir()
	layOut(t, root, "/run/containerd/containerd.sock", plainFile, "")

	_, err := Detect(context.Background(), root, Candidates)
	if !errors.Is(err, ErrNoRuntime) {
		t.Fatalf("Detect = %v, want ErrNoRuntime", err)
	}
}
