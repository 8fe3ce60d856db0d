package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ErrDenied marks a session the agent's policy does not allow.
var ErrDenied = errors.New("denied by policy")

// ErrBusy means the agent runs as many sessions as its policy allows.
var ErrBusy = errors.New("agent busy")

// Policy is what the node operator allows. It comes from the file given to
// `agent --config`; the zero value is not valid, start from DefaultPolicy.
type Policy struct {
	// AllowedProfiles applies in every namespace without an entry in
	// NamespaceProfiles.
	AllowedProfiles   []string
	NamespaceProfiles map[string][]string
	// AllowCustom allows `attach --custom`, which can add any capability.
	AllowCustom bool

	// AllowedImages are references or digests; nil allows every image
	// present in the agent's containerd namespace. The toolbox is always
	// allowed.
	AllowedImages []string

	DeniedNamespaces []string

	// MaxSessionLength and IdleTimeout end a session; 0 means no limit.
	MaxSessionLength time.Duration
	IdleTimeout      time.Duration

	MaxConcurrentSessions int
	RequireReason         bool
}

// Defaults of a policy, as documented in the README.
const (
	DefaultMaxSessionLength      = time.Hour
	DefaultIdleTimeout           = 15 * time.Minute
	DefaultMaxConcurrentSessions = 16
)

// DefaultPolicy allows every profile but sysadmin and --custom, every image
// present, and every namespace but kube-system and the agent's own.
func DefaultPolicy(agentNamespace string) Policy {
	return Policy{
		AllowedProfiles:       []string{"general", "baseline", "restricted", "netadmin"},
		DeniedNamespaces:      []string{"kube-system", agentNamespace},
		MaxSessionLength:      DefaultMaxSessionLength,
		IdleTimeout:           DefaultIdleTimeout,
		MaxConcurrentSessions: DefaultMaxConcurrentSessions,
	}
}

// policyFile is the config file's shape. Pointers tell a field left out,
// which keeps its default, from one set to its zero value.
type policyFile struct {
	AllowedProfiles       *[]string           `json:"allowedProfiles"`
	NamespaceProfiles     map[string][]string `json:"namespaceProfiles"`
	AllowCustom           *bool               `json:"allowCustom"`
	AllowedImages         *[]string           `json:"allowedImages"`
	DeniedNamespaces      *[]string           `json:"deniedNamespaces"`
	MaxSessionLength      *string             `json:"maxSessionLength"`
	IdleTimeout           *string             `json:"idleTimeout"`
	MaxConcurrentSessions *int                `json:"maxConcurrentSessions"`
	RequireReason         *bool               `json:"requireReason"`
}

// LoadPolicy reads the config file at path (YAML or JSON) over the
// defaults. Unknown fields and invalid values are errors.
func LoadPolicy(path, agentNamespace string) (Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("read agent config: %w", err)
	}
	policy, err := ParsePolicy(data, agentNamespace)
	if err != nil {
		return Policy{}, fmt.Errorf("agent config %s: %w", path, err)
	}
	return policy, nil
}

// ParsePolicy reads a config file's content over the defaults.
func ParsePolicy(data []byte, agentNamespace string) (Policy, error) {
	var f policyFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return Policy{}, err
	}

	p := DefaultPolicy(agentNamespace)
	if err := f.apply(&p); err != nil {
		return Policy{}, err
	}
	if err := p.validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func (f *policyFile) apply(p *Policy) error {
	setIf(&p.AllowedProfiles, f.AllowedProfiles)
	p.NamespaceProfiles = f.NamespaceProfiles
	setIf(&p.AllowCustom, f.AllowCustom)
	if f.AllowedImages != nil {
		p.AllowedImages = append([]string{}, *f.AllowedImages...)
	}
	setIf(&p.DeniedNamespaces, f.DeniedNamespaces)
	setIf(&p.MaxConcurrentSessions, f.MaxConcurrentSessions)
	setIf(&p.RequireReason, f.RequireReason)

	if err := setDuration(&p.MaxSessionLength, "maxSessionLength", f.MaxSessionLength); err != nil {
		return err
	}
	return setDuration(&p.IdleTimeout, "idleTimeout", f.IdleTimeout)
}

// setDuration reads a duration field such as "1h30m", naming the field in
// any error.
func setDuration(dst *time.Duration, field string, value *string) error {
	if value == nil {
		return nil
	}

	parsed, err := time.ParseDuration(*value)
	if err != nil {
		return fmt.Errorf("%s: %q is not a duration such as 15m or 1h30m", field, *value)
	}
	if parsed < 0 {
		return fmt.Errorf("%s is %s; it must not be negative (0 means no limit)", field, *value)
	}
	*dst = parsed
	return nil
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func (p *Policy) validate() error {
	profileLists := map[string][]string{"allowedProfiles": p.AllowedProfiles}
	for ns, names := range p.NamespaceProfiles {
		profileLists["namespaceProfiles."+ns] = names
	}
	for field, names := range profileLists {
		for _, name := range names {
			if _, ok := profiles[name]; !ok {
				return fmt.Errorf("%s: unknown profile %q: choose from %s",
					field, name, strings.Join(profileNames(), ", "))
			}
		}
	}

	switch {
	case p.MaxConcurrentSessions < 1:
		return fmt.Errorf("maxConcurrentSessions is %d; it must be at least 1", p.MaxConcurrentSessions)
	case slices.Contains(p.AllowedImages, ""):
		return errors.New("allowedImages holds an empty entry")
	}
	return nil
}

// Denial is a request the policy refuses. Rule names the config field
// that refused it, for the user, the audit log and the metrics.
type Denial struct {
	Rule string
	msg  string
}

func (d *Denial) Error() string        { return d.msg }
func (d *Denial) Is(target error) bool { return target == ErrDenied }

func deny(rule, format string, args ...any) error {
	return &Denial{Rule: rule, msg: fmt.Sprintf(format, args...)}
}

// request is what the policy decides on before the target is looked up.
type request struct {
	namespace string
	profile   string
	custom    bool
	reason    string
}

// checkRequest applies the rules that need no runtime.
func (p *Policy) checkRequest(r request) error {
	if err := p.checkNamespace(r.namespace); err != nil {
		return err
	}
	if err := p.checkProfile(r.namespace, r.profile); err != nil {
		return err
	}
	if r.custom && !p.AllowCustom {
		return deny("allowCustom", "--custom is not allowed by the agent's policy (allowCustom: false)")
	}
	return p.checkReason(r.reason)
}

// checkFileOp applies the policy to cp and edit. They read and write the
// target with the agent's own root access, as a tool of the general
// profile could, so they are allowed only where general is.
func (p *Policy) checkFileOp(namespace, reason string) error {
	if err := p.checkNamespace(namespace); err != nil {
		return err
	}
	allowed, field := p.profilesIn(namespace)
	if !slices.Contains(allowed, DefaultProfile) {
		return deny("profile", "cp and edit act with the agent's root access, so they are allowed only where "+
			"profile %s is; namespace %s does not allow it (%s); allowed: %s",
			DefaultProfile, namespace, field, listOrNone(allowed))
	}
	return p.checkReason(reason)
}

func (p *Policy) checkReason(reason string) error {
	if p.RequireReason && strings.TrimSpace(reason) == "" {
		return deny("requireReason", "the agent's policy requires a reason for every session, cp and edit "+
			"(requireReason): pass --reason \"why you are debugging\"")
	}
	return nil
}

// checkNamespace applies deniedNamespaces, to sessions, cp and edit alike.
func (p *Policy) checkNamespace(namespace string) error {
	if !slices.Contains(p.DeniedNamespaces, namespace) {
		return nil
	}
	return deny("deniedNamespaces", "namespace %s may not be debugged on this node: "+
		"the agent's policy denies it (deniedNamespaces: %s)", namespace, strings.Join(p.DeniedNamespaces, ", "))
}

// profilesIn is the profiles allowed in namespace and the field that
// allows them.
func (p *Policy) profilesIn(namespace string) ([]string, string) {
	if names, ok := p.NamespaceProfiles[namespace]; ok {
		return names, "namespaceProfiles." + namespace
	}
	return p.AllowedProfiles, "allowedProfiles"
}

func (p *Policy) checkProfile(namespace, profile string) error {
	allowed, field := p.profilesIn(namespace)
	if slices.Contains(allowed, profile) {
		return nil
	}

	return deny("profile", "profile %s is not allowed in namespace %s by the agent's policy (%s); allowed: %s",
		profile, namespace, field, listOrNone(allowed))
}

// allowsImageRef reports whether the allow-list lets ref through by name
// alone, before the image is looked up.
func (p *Policy) allowsImageRef(ref string, toolbox bool) bool {
	return toolbox || p.AllowedImages == nil || slices.Contains(p.AllowedImages, ref)
}

// checkImageDigest applies the allow-list's digest entries to an image
// found under ref; digest is empty when there is no such image.
func (p *Policy) checkImageDigest(ref, digest string) error {
	for _, allowed := range p.AllowedImages {
		if digest != "" && (allowed == digest || allowed == nameAt(ref, digest)) {
			return nil
		}
	}

	shown := ref
	if digest != "" {
		shown += " (" + digest + ")"
	}
	return deny("allowedImages", "image %s is not allowed by the agent's policy (allowedImages); "+
		"allowed: the toolbox, %s", shown, listOrNone(p.AllowedImages))
}

// nameAt is ref pinned to digest: "repo/name@sha256:…".
func nameAt(ref, digest string) string {
	name := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name = ref[:i]
	}
	return name + "@" + digest
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// admit applies the policy's request rules and takes a slot among the
// concurrent sessions.
func (s *session) admit() error {
	profile, err := LookupProfile(s.start.Profile)
	if err != nil {
		return err
	}
	custom, err := decodeCustom(s.start.Custom)
	if err != nil {
		return err
	}
	if custom != nil {
		if s.custom, err = customGrant(profile, custom); err != nil {
			return err
		}
	}
	if err := s.agent.checkPathHonors(s.profileName(), len(s.start.Custom) > 0); err != nil {
		return err
	}

	policy := s.agent.policy
	err = policy.checkRequest(request{
		namespace: s.start.Target.Namespace,
		profile:   s.profileName(),
		custom:    len(s.start.Custom) > 0,
		reason:    s.start.Reason,
	})
	if err != nil {
		return err
	}
	return s.agent.registry.add(s, policy.MaxConcurrentSessions)
}

// admitImage applies the image allow-list: by reference first, then by
// the digest of the image found under it.
func (s *session) admitImage(ctx context.Context) error {
	ref := s.start.Image
	toolbox := ref == "" || ref == s.agent.cfg.ToolboxImage
	if ref == "" {
		ref = s.agent.cfg.ToolboxImage
	}
	s.image = ref

	digest, err := s.agent.imageDigest(ctx, ref)
	s.imageDigest = digest
	s.listed.Store(&listing{target: s.listedTarget(), image: ref})

	policy := s.agent.policy
	if policy.allowsImageRef(ref, toolbox) {
		return err
	}
	if errors.Is(err, ErrImageMissing) {
		// Not allowed by name, and no digest to allow it by.
		return policy.checkImageDigest(ref, "")
	}
	if err != nil {
		return err
	}
	return policy.checkImageDigest(ref, s.imageDigest)
}

// imageDigest is the manifest digest of ref in the agent's containerd
// namespace. Paths other than containerd's keep no images there: their
// digest is unknown, and only references can be allowed.
func (a *Agent) imageDigest(ctx context.Context, ref string) (string, error) {
	if a.images == nil {
		return "", nil
	}
	image, err := a.images.get(ctx, ref)
	if err != nil {
		return "", err
	}
	return image.image.Target().Digest.String(), nil
}

// checkPathHonors refuses what the launch path cannot apply: only the
// containerd path builds the tool's OCI spec from a profile. The CRI path
// always runs root with SYS_PTRACE, and the nsenter path runs with the
// agent's own privileges, so a weaker profile asked for would silently be
// a stronger one.
func (a *Agent) checkPathHonors(profile string, custom bool) error {
	if _, ok := a.launcher.(*containerdLauncher); ok {
		return nil
	}
	if custom || profile != DefaultProfile {
		return badRequest("the agent's %s path cannot apply profiles or --custom; only %s is available there "+
			"(run the agent with --path containerd for profiles)", a.launcher.name(), DefaultProfile)
	}
	return nil
}

func (s *session) profileName() string {
	if s.start.Profile == "" {
		return DefaultProfile
	}
	return s.start.Profile
}
