package agent

import (
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/pkg/oci"
)

// Profile is a named list of small changes to a tool container's spec.
type Profile struct {
	Name string
	Opts []oci.SpecOpts
}

// DefaultProfile is used when the client names none.
const DefaultProfile = "general"

// profiles holds every profile the agent knows, by name.
var profiles = map[string]Profile{
	"general": {
		Name: "general",
		// SYS_PTRACE lets root in the tool read /proc/<pid>/root of a target
		// that runs as another user.
		Opts: []oci.SpecOpts{oci.WithAddedCapabilities([]string{"CAP_SYS_PTRACE"})},
	},
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
