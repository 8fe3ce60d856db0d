package agent

import (
	"context"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Profile is a named list of small changes to a tool container's spec.
type Profile struct {
	Name string
	Opts []oci.SpecOpts

	// ReadsAnyTarget is true when the profile can open /target of a
	// target that runs as another user: it keeps CAP_SYS_PTRACE.
	ReadsAnyTarget bool

	// UID is the user the tool process runs as.
	UID uint32
}

// DefaultProfile is used when the client names none.
const DefaultProfile = "general"

// nobody is the user of the restricted profile.
const nobody = 65534

// profiles holds every profile the agent knows, by name. Each starts from
// containerd's default spec: root, the default capabilities, no new
// privileges, the default masked and read-only paths.
var profiles = map[string]Profile{
	// general reads any target's files: SYS_PTRACE lets root in the tool
	// open /proc/<pid>/root of a target that runs as another user.
	"general": {
		Name:           "general",
		Opts:           []oci.SpecOpts{withCaps("CAP_SYS_PTRACE")},
		ReadsAnyTarget: true,
	},
	// baseline is containerd's default spec, unchanged.
	"baseline": {Name: "baseline"},
	"restricted": {
		Name: "restricted",
		UID:  nobody,
		Opts: []oci.SpecOpts{
			withUser(nobody, nobody),
			oci.WithCapabilities(nil),
			oci.WithNoNewPrivileges,
			// Last: the default seccomp profile depends on the capabilities.
			seccomp.WithDefaultProfile(),
		},
	},
	"netadmin": {
		Name:           "netadmin",
		Opts:           []oci.SpecOpts{withCaps("CAP_SYS_PTRACE", "CAP_NET_ADMIN", "CAP_NET_RAW")},
		ReadsAnyTarget: true,
	},
	"sysadmin": {
		Name:           "sysadmin",
		Opts:           privileged,
		ReadsAnyTarget: true,
	},
}

// privileged is oci.WithPrivileged plus every device in the device cgroup.
// The capabilities are the agent's own (read from /proc/self/status when
// the spec is built): runc refuses capabilities the kernel does not know,
// so "every known one" fails on older kernels. Host device nodes are not
// copied into /dev; /proc/1/root/dev reaches the host's.
var privileged = []oci.SpecOpts{
	oci.WithAllCurrentCapabilities,
	oci.WithMaskedPaths(nil),
	oci.WithReadonlyPaths(nil),
	oci.WithWriteableSysfs,
	oci.WithWriteableCgroupfs,
	oci.WithAllDevicesAllowed,
	oci.WithSeccompUnconfined,
	withNewPrivileges,
}

func withCaps(caps ...string) oci.SpecOpts {
	return oci.WithAddedCapabilities(caps)
}

func withUser(uid, gid uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Process.User = specs.User{UID: uid, GID: gid}
		return nil
	}
}

func withNewPrivileges(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	s.Process.NoNewPrivileges = false
	return nil
}

// LookupProfile returns the named profile, or an error that lists the
// known ones.
func LookupProfile(name string) (Profile, error) {
	if name == "" {
		name = DefaultProfile
	}

	profile, ok := profiles[name]
	if !ok {
		return Profile{}, badRequest("unknown profile %q: choose from %s", name, strings.Join(profileNames(), ", "))
	}
	return profile, nil
}

func profileNames() []string {
	var names []string
	for name := range profiles {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
