package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"sigs.k8s.io/yaml"
)

// Custom is a partial OCI process spec laid over a profile's.
type Custom struct {
	Process specs.Process
	// set names the top-level fields the file gave, so that an explicit
	// zero (uid 0, noNewPrivileges false) still counts.
	set map[string]bool
}

// ParseCustom reads a partial OCI process spec, JSON or YAML, as given to
// `attach --custom`. Unknown fields are rejected, and so are the fields
// nodedebug sets itself.
func ParseCustom(data []byte) (*Custom, error) {
	c := &Custom{}
	if err := yaml.UnmarshalStrict(data, &c.Process); err != nil {
		return nil, badRequest("custom process spec: %v", err)
	}

	var fields map[string]any
	if err := yaml.Unmarshal(data, &fields); err != nil {
		return nil, badRequest("custom process spec: %v", err)
	}
	c.set = map[string]bool{}
	for name := range fields {
		c.set[name] = true
	}

	if err := validateCustom(&c.Process); err != nil {
		return nil, err
	}
	return c, nil
}

func validateCustom(p *specs.Process) error {
	switch {
	case len(p.Args) > 0 || p.CommandLine != "":
		return badRequest("custom process spec sets args; put the command after -- instead")
	case p.Terminal || p.ConsoleSize != nil:
		return badRequest("custom process spec sets the terminal; use -t instead")
	case p.Cwd != "" && p.Cwd[0] != '/':
		return badRequest("custom process spec: cwd %q is not an absolute path", p.Cwd)
	}
	return nil
}

// withCustom lays a custom process spec over the profile's: the fields it
// sets replace the profile's, and its env is added.
func withCustom(c *Custom) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		if c == nil {
			return nil
		}
		mergeProcess(s.Process, c)
		return nil
	}
}

func mergeProcess(dst *specs.Process, custom *Custom) {
	c := &custom.Process
	if custom.set["user"] {
		dst.User = c.User
	}
	dst.Env = append(dst.Env, c.Env...)
	if c.Cwd != "" {
		dst.Cwd = c.Cwd
	}
	if c.Capabilities != nil {
		dst.Capabilities = c.Capabilities
	}
	if c.Rlimits != nil {
		dst.Rlimits = c.Rlimits
	}
	if custom.set["noNewPrivileges"] {
		dst.NoNewPrivileges = c.NoNewPrivileges
	}
	if c.ApparmorProfile != "" {
		dst.ApparmorProfile = c.ApparmorProfile
	}
	if c.OOMScoreAdj != nil {
		dst.OOMScoreAdj = c.OOMScoreAdj
	}
	if c.SelinuxLabel != "" {
		dst.SelinuxLabel = c.SelinuxLabel
	}
}

// decodeCustom reads the custom spec a client sent, if any.
func decodeCustom(data []byte) (*Custom, error) {
	if len(data) == 0 {
		return nil, nil
	}
	p, err := ParseCustom(data)
	if err != nil {
		return nil, fmt.Errorf("read --custom: %w", err)
	}
	return p, nil
}

// customGrant is what custom changes of profile's process, for the audit
// log: both specs are built as for a tool container, and compared.
func customGrant(profile Profile, custom *Custom) (*AuditCustom, error) {
	in := ToolSpec{ID: "nodedebug-audit", Args: []string{"sh"}, Cwd: "/", TargetPid: 1,
		Share: []string{}, Profile: profile}
	base, err := BuildSpec(in)
	if err != nil {
		return nil, err
	}
	in.Custom = custom
	granted, err := BuildSpec(in)
	if err != nil {
		return nil, err
	}

	had, has := capSet(base.Process), capSet(granted.Process)
	user := granted.Process.User
	return &AuditCustom{
		User:                AuditIDs{UID: user.UID, GID: user.GID},
		CapabilitiesAdded:   missingFrom(had, has),
		CapabilitiesDropped: missingFrom(has, had),
	}, nil
}

// capSet is every capability in any of p's sets.
func capSet(p *specs.Process) map[string]bool {
	set := map[string]bool{}
	if c := p.Capabilities; c != nil {
		for _, list := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
			for _, name := range list {
				set[name] = true
			}
		}
	}
	return set
}

// missingFrom lists, sorted, what is in set but not in base.
func missingFrom(base, set map[string]bool) []string {
	var names []string
	for name := range set {
		if !base[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
