package agent

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// baseSpec is containerd's default spec for a tool container id; each test
// states exactly what BuildSpec must change on top of it.
func baseSpec(t *testing.T, id string) *specs.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), Namespace)
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func setNamespace(s *specs.Spec, kind specs.LinuxNamespaceType, path string) {
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == kind {
			s.Linux.Namespaces[i].Path = path
			return
		}
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: kind, Path: path})
}

func addCap(s *specs.Spec, capability string) {
	c := s.Process.Capabilities
	c.Bounding = append(c.Bounding, capability)
	c.Effective = append(c.Effective, capability)
	c.Permitted = append(c.Permitted, capability)
}

func TestBuildSpec(t *testing.T) {
	general, err := LookupProfile("")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		in   ToolSpec
		want func(*specs.Spec)
	}{
		{
			name: "shell joining every namespace with a terminal",
			in: ToolSpec{ID: "nodedebug-a", Args: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}, Cwd: "/",
				TTY: true, Width: 120, Height: 40, TargetPid: 4242, Share: DefaultShare, Profile: general},
			want: func(s *specs.Spec) {
				s.Process.Args = []string{"/bin/sh"}
				s.Process.Env = []string{"PATH=/bin"}
				s.Process.Terminal = true
				s.Process.ConsoleSize = &specs.Box{Width: 120, Height: 40}
				s.Hostname = ""
				setNamespace(s, specs.PIDNamespace, "/proc/4242/ns/pid")
				setNamespace(s, specs.NetworkNamespace, "/proc/4242/ns/net")
				setNamespace(s, specs.IPCNamespace, "/proc/4242/ns/ipc")
				setNamespace(s, specs.UTSNamespace, "/proc/4242/ns/uts")
				addCap(s, "CAP_SYS_PTRACE")
			},
		},
		{
			name: "pid namespace only, no terminal",
			in: ToolSpec{ID: "nodedebug-b", Args: []string{"ps"}, Env: []string{"A=1"}, Cwd: "/work",
				TargetPid: 7, Share: []string{}, Profile: general},
			want: func(s *specs.Spec) {
				s.Process.Args = []string{"ps"}
				s.Process.Env = []string{"A=1"}
				s.Process.Cwd = "/work"
				setNamespace(s, specs.PIDNamespace, "/proc/7/ns/pid")
				addCap(s, "CAP_SYS_PTRACE")
			},
		},
		{
			name: "under the tool init",
			in: ToolSpec{ID: "nodedebug-c", Args: []string{"sh", "-c", "ps"}, Env: []string{"A=1"}, Cwd: "/",
				TargetPid: 9, Share: []string{"net"}, Profile: general, Init: "/proc/77/exe"},
			want: func(s *specs.Spec) {
				s.Process.Args = []string{"/.nodedebug/nodedebug", "init", "--", "sh", "-c", "ps"}
				s.Process.Env = []string{"A=1"}
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/.nodedebug/nodedebug", Type: "bind",
					Source: "/proc/77/exe", Options: []string{"rbind", "ro", "nosuid", "nodev"}})
				setNamespace(s, specs.PIDNamespace, "/proc/9/ns/pid")
				setNamespace(s, specs.NetworkNamespace, "/proc/9/ns/net")
				addCap(s, "CAP_SYS_PTRACE")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildSpec(tt.in)
			if err != nil {
				t.Fatal(err)
			}

			want := baseSpec(t, tt.in.ID)
			tt.want(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("spec mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildSpecRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   ToolSpec
		bad  bool
	}{
		{name: "no command", in: ToolSpec{ID: "x", TargetPid: 1}},
		{name: "no target pid", in: ToolSpec{ID: "x", Args: []string{"sh"}}},
		{name: "unknown namespace", in: ToolSpec{ID: "x", Args: []string{"sh"}, TargetPid: 1, Share: []string{"mnt"}}, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BuildSpec(tt.in)
			if err == nil {
				t.Fatal("want an error")
			}
			if tt.bad && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v should be a bad request", err)
			}
		})
	}
}

func TestResolveProcess(t *testing.T) {
	image := ProcessConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"arg"}, Env: []string{"PATH=/opt/bin"}, WorkingDir: "/srv"}

	tests := []struct {
		name     string
		command  []string
		image    ProcessConfig
		tty      bool
		wantArgs []string
		wantEnv  []string
		wantCwd  string
	}{
		{name: "image entrypoint and cmd", image: image, wantArgs: []string{"/entry", "arg"},
			wantEnv: []string{"PATH=/opt/bin", "TARGET=/target"}, wantCwd: "/srv"},
		{name: "command replaces both", command: []string{"ls", "-l"}, image: image, tty: true,
			wantArgs: []string{"ls", "-l"}, wantEnv: []string{"PATH=/opt/bin", "TERM=xterm", "TARGET=/target"}, wantCwd: "/srv"},
		{name: "empty image gets a shell and a PATH", wantArgs: []string{"/bin/sh"},
			wantEnv: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TARGET=/target"}, wantCwd: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, env, cwd := ResolveProcess(tt.command, tt.image, tt.tty)
			if !slices.Equal(args, tt.wantArgs) || !slices.Equal(env, tt.wantEnv) || cwd != tt.wantCwd {
				t.Fatalf("got %q %q %q, want %q %q %q", args, env, cwd, tt.wantArgs, tt.wantEnv, tt.wantCwd)
			}
		})
	}
}
