package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Namespace is the containerd namespace that holds tool containers and
// images. Kubelet only looks at k8s.io, so it never sees them.
const Namespace = "nodedebug"

// TargetDir is where the target's root filesystem appears in a tool
// container.
const TargetDir = "/target"

// shareable lists the target namespaces a tool container may join besides
// pid, which it always joins.
var shareable = map[string]specs.LinuxNamespaceType{
	"net": specs.NetworkNamespace,
	"ipc": specs.IPCNamespace,
	"uts": specs.UTSNamespace,
}

// DefaultShare is what a tool container joins when the client says nothing.
var DefaultShare = []string{"net", "ipc", "uts"}

// ToolSpec is everything the OCI spec of a tool container depends on. It is
// plain data so that building the spec needs no runtime.
type ToolSpec struct {
	ID string

	// Process as resolved from the command and the image's config.
	Args []string
	Env  []string
	Cwd  string

	TTY    bool
	Width  uint32
	Height uint32
	Stdin  bool

	// TargetPid is the target's host pid; its namespaces are joined by path.
	TargetPid int

	// Share names the target namespaces to join besides pid.
	Share []string

	// Init is the host path of the nodedebug binary, mounted read-only to
	// run as the tool's first process; empty runs the command directly.
	Init string

	// Exited targets have no process: the tool joins no namespace and gets
	// TargetMounts, which show the target's files read-only, instead.
	Exited       bool
	TargetMounts []specs.Mount

	Profile Profile

	// Custom is laid over the profile; nil changes nothing.
	Custom *Custom
}

// BuildSpec returns the OCI spec of a tool container. It does no I/O.
func BuildSpec(in ToolSpec) (*specs.Spec, error) {
	opts, err := specOpts(in)
	if err != nil {
		return nil, err
	}

	ctx := namespaces.WithNamespace(context.Background(), Namespace)
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: in.ID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("build OCI spec of tool container %s: %w", in.ID, err)
	}
	return spec, nil
}

func specOpts(in ToolSpec) ([]oci.SpecOpts, error) {
	if len(in.Args) == 0 {
		return nil, fmt.Errorf("tool container %s has no command", in.ID)
	}

	joins, err := targetOpts(in)
	if err != nil {
		return nil, err
	}

	opts := []oci.SpecOpts{
		oci.WithProcessArgs(withInit(in.Init, in.Args)...),
		oci.WithEnv(in.Env),
		oci.WithProcessCwd(in.Cwd),
		withTerminal(in.TTY, in.Width, in.Height),
	}
	opts = append(opts, joins...)
	if in.Init != "" {
		opts = append(opts, oci.WithMounts([]specs.Mount{initMount(in.Init)}))
	}
	if slices.Contains(in.Share, "uts") {
		opts = append(opts, withoutHostname)
	}
	opts = append(opts, in.Profile.Opts...)
	if in.Custom != nil {
		opts = append(opts, withCustom(in.Custom))
	}
	return opts, nil
}

// InitPath is where the tool's init binary appears in a tool container.
const InitPath = "/.nodedebug/nodedebug"

// withInit runs args under the tool init, which reaps what the session
// orphans in the target's pid namespace.
func withInit(init string, args []string) []string {
	if init == "" {
		return args
	}
	return append([]string{InitPath, "init", "--"}, args...)
}

func initMount(source string) specs.Mount {
	return specs.Mount{
		Destination: InitPath,
		Type:        "bind",
		Source:      source,
		Options:     []string{"rbind", "ro", "nosuid", "nodev"},
	}
}

// namespaceJoins joins the target's pid namespace and the shared ones by
// their /proc paths, so the tool sees exactly what the target sees.
func namespaceJoins(pid int, share []string) ([]oci.SpecOpts, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("target pid %d is not a process", pid)
	}

	opts := []oci.SpecOpts{joinNamespace(pid, specs.PIDNamespace, "pid")}
	for _, name := range share {
		kind, ok := shareable[name]
		if !ok {
			return nil, badRequest("cannot share namespace %q: choose from net, ipc, uts", name)
		}
		opts = append(opts, joinNamespace(pid, kind, name))
	}
	return opts, nil
}

func joinNamespace(pid int, kind specs.LinuxNamespaceType, file string) oci.SpecOpts {
	return oci.WithLinuxNamespace(specs.LinuxNamespace{
		Type: kind,
		Path: fmt.Sprintf("/proc/%d/ns/%s", pid, file),
	})
}

func withTerminal(tty bool, width, height uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Process.Terminal = tty
		if tty && width > 0 && height > 0 {
			s.Process.ConsoleSize = &specs.Box{Width: uint(width), Height: uint(height)}
		}
		return nil
	}
}

// withoutHostname drops the hostname: a runtime refuses to set one in a UTS
// namespace the container joins rather than owns.
func withoutHostname(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	s.Hostname = ""
	return nil
}

// ProcessConfig is the part of an image's config that shapes the process.
type ProcessConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
}

// defaultShell runs when neither the client nor the image names a command.
var defaultShell = []string{"/bin/sh"}

// ResolveProcess picks args, env and cwd from the client's command and the
// image's config, as a container runtime would.
func ResolveProcess(command []string, image ProcessConfig, tty bool) (args, env []string, cwd string) {
	args = command
	if len(args) == 0 {
		args = append(slices.Clone(image.Entrypoint), image.Cmd...)
	}
	if len(args) == 0 {
		args = defaultShell
	}

	env = slices.Clone(image.Env)
	if !slices.ContainsFunc(env, hasKey("PATH")) {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if tty && !slices.ContainsFunc(env, hasKey("TERM")) {
		env = append(env, "TERM=xterm")
	}
	env = append(env, "TARGET="+TargetDir)

	cwd = image.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	return args, env, cwd
}

func hasKey(key string) func(string) bool {
	return func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == key
	}
}
