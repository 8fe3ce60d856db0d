package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParsePolicy(t *testing.T) {
	defaults := DefaultPolicy("debug-system")

	tests := []struct {
		name string
		file string
		want func(*Policy)
	}{
		{name: "empty file keeps every default", file: "", want: func(*Policy) {}},
		{name: "empty object keeps every default", file: "{}", want: func(*Policy) {}},
		{
			name: "every field, YAML",
			file: `
allowedProfiles: [restricted]
namespaceProfiles:
  payments: [restricted, baseline]
allowCustom: true
allowedImages: [docker.io/nicolaka/netshoot:v0.13, "sha256:abc"]
deniedNamespaces: []
maxSessionLength: 30m
idleTimeout: 0s
maxConcurrentSessions: 2
requireReason: true
`,
			want: func(p *Policy) {
				p.AllowedProfiles = []string{"restricted"}
				p.NamespaceProfiles = map[string][]string{"payments": {"restricted", "baseline"}}
				p.AllowCustom = true
				p.AllowedImages = []string{"docker.io/nicolaka/netshoot:v0.13", "sha256:abc"}
				p.DeniedNamespaces = []string{}
				p.MaxSessionLength = 30 * time.Minute
				p.IdleTimeout = 0
				p.MaxConcurrentSessions = 2
				p.RequireReason = true
			},
		},
		{
			name: "JSON, and an empty image list allows only the toolbox",
			file: `{"allowedImages": [], "maxSessionLength": "2h"}`,
			want: func(p *Policy) {
				p.AllowedImages = []string{}
				p.MaxSessionLength = 2 * time.Hour
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePolicy([]byte(tt.file), "debug-system")
			if err != nil {
				t.Fatal(err)
			}

			want := DefaultPolicy("debug-system")
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("policy mismatch (-want +got):\n%s", diff)
			}
		})
	}

	if want := []string{"kube-system", "debug-system"}; !cmp.Equal(defaults.DeniedNamespaces, want) {
		t.Fatalf("default denied namespaces = %q, want %q", defaults.DeniedNamespaces, want)
	}
}

func TestParsePolicyRejects(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string
	}{
		{name: "unknown field", file: "maxSessions: 3\n", want: `unknown field "maxSessions"`},
		{name: "unknown profile", file: "allowedProfiles: [root]\n", want: `allowedProfiles: unknown profile "root"`},
		{name: "unknown profile in a namespace", file: "namespaceProfiles: {a: [x]}\n",
			want: `namespaceProfiles.a: unknown profile "x"`},
		{name: "duration without unit", file: "idleTimeout: 15\n", want: `idleTimeout: "15" is not a duration such as 15m`},
		{name: "bad duration", file: "maxSessionLength: 1hour\n", want: `maxSessionLength: "1hour" is not a duration`},
		{name: "negative duration", file: "idleTimeout: -5m\n", want: "idleTimeout is -5m; it must not be negative"},
		{name: "no sessions at all", file: "maxConcurrentSessions: 0\n", want: "at least 1"},
		{name: "empty image", file: "allowedImages: ['']\n", want: "empty entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tt.file), "nodedebug")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestPolicyCheckRequest(t *testing.T) {
	policy := DefaultPolicy("nodedebug")
	policy.NamespaceProfiles = map[string][]string{"payments": {"restricted"}}
	strict := policy
	strict.RequireReason = true

	tests := []struct {
		name   string
		policy Policy
		req    request
		rule   string
		want   string
	}{
		{name: "general in an ordinary namespace", policy: policy,
			req: request{namespace: "shop", profile: "general"}},
		{name: "sysadmin is off by default", policy: policy,
			req: request{namespace: "shop", profile: "sysadmin"}, rule: "profile",
			want: "profile sysadmin is not allowed in namespace shop by the agent's policy (allowedProfiles); " +
				"allowed: general, baseline, restricted, netadmin"},
		{name: "a namespace's own list replaces the default", policy: policy,
			req: request{namespace: "payments", profile: "general"}, rule: "profile",
			want: "profile general is not allowed in namespace payments by the agent's policy " +
				"(namespaceProfiles.payments); allowed: restricted"},
		{name: "kube-system is denied", policy: policy,
			req: request{namespace: "kube-system", profile: "general"}, rule: "deniedNamespaces",
			want: "namespace kube-system may not be debugged on this node: the agent's policy denies it " +
				"(deniedNamespaces: kube-system, nodedebug)"},
		{name: "the agent's own namespace is denied", policy: policy,
			req: request{namespace: "nodedebug", profile: "general"}, rule: "deniedNamespaces"},
		{name: "custom is off by default", policy: policy,
			req: request{namespace: "shop", profile: "general", custom: true}, rule: "allowCustom"},
		{name: "a required reason is missing", policy: strict,
			req: request{namespace: "shop", profile: "general", reason: "  "}, rule: "requireReason"},
		{name: "a required reason is given", policy: strict,
			req: request{namespace: "shop", profile: "general", reason: "INC-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.checkRequest(tt.req)
			requireDenial(t, err, tt.rule, tt.want)
		})
	}
}

func requireDenial(t *testing.T, err error, rule, msg string) {
	t.Helper()
	if rule == "" {
		if err != nil {
			t.Fatalf("want no denial, got %v", err)
		}
		return
	}

	var denial *Denial
	if !errors.As(err, &denial) || !errors.Is(err, ErrDenied) {
		t.Fatalf("want a denial by %s, got %v", rule, err)
	}
	if denial.Rule != rule || (msg != "" && denial.Error() != msg) {
		t.Fatalf("got denial by %s: %q\nwant by %s: %q", denial.Rule, denial.Error(), rule, msg)
	}
}

func TestPolicyImages(t *testing.T) {
	const digest = "sha256:1111"
	listed := DefaultPolicy("nodedebug")
	listed.AllowedImages = []string{"docker.io/library/busybox:1.36", "sha256:2222", "registry.local/tools/net@" + digest}

	tests := []struct {
		name    string
		policy  Policy
		ref     string
		digest  string
		toolbox bool
		rule    string
	}{
		{name: "no list allows any present image", policy: DefaultPolicy("nodedebug"), ref: "anything:1"},
		{name: "the toolbox is always allowed", policy: listed, ref: "nodedebug.local/toolbox:latest", toolbox: true},
		{name: "listed by reference", policy: listed, ref: "docker.io/library/busybox:1.36"},
		{name: "listed by digest", policy: listed, ref: "whatever:tag", digest: "sha256:2222"},
		{name: "listed by name and digest", policy: listed, ref: "registry.local/tools/net:v2", digest: digest},
		{name: "same name, other digest", policy: listed, ref: "registry.local/tools/net:v2",
			digest: "sha256:3333", rule: "allowedImages"},
		{name: "not listed", policy: listed, ref: "evil/miner:latest", digest: "sha256:4444", rule: "allowedImages"},
		{name: "not listed and not present", policy: listed, ref: "evil/miner:latest", rule: "allowedImages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if !tt.policy.allowsImageRef(tt.ref, tt.toolbox) {
				err = tt.policy.checkImageDigest(tt.ref, tt.digest)
			}
			requireDenial(t, err, tt.rule, "")
		})
	}
}

func TestProfilesNeedTheContainerdPath(t *testing.T) {
	tests := []struct {
		name     string
		launcher launcher
		profile  string
		custom   bool
		bad      bool
	}{
		{name: "containerd applies any profile", launcher: &containerdLauncher{}, profile: "restricted"},
		{name: "containerd applies custom", launcher: &containerdLauncher{}, profile: "general", custom: true},
		{name: "cri runs general", launcher: &criLauncher{}, profile: "general"},
		{name: "cri cannot restrict", launcher: &criLauncher{}, profile: "restricted", bad: true},
		{name: "nsenter cannot restrict", launcher: &nsenterLauncher{}, profile: "baseline", bad: true},
		{name: "nsenter cannot take custom", launcher: &nsenterLauncher{}, profile: "general", custom: true, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Agent{launcher: tt.launcher}
			err := a.checkPathHonors(tt.profile, tt.custom)
			if tt.bad != (err != nil) || (err != nil && !errors.Is(err, ErrBadRequest)) {
				t.Fatalf("got %v, want a bad request: %v", err, tt.bad)
			}
		})
	}
}

func TestCopyAndEditAllowedOnlyWhereGeneralIsAndNeedAReason(t *testing.T) {
	policy := DefaultPolicy("nodedebug")
	policy.NamespaceProfiles = map[string][]string{"payments": {"restricted"}, "ops": {"general"}}
	strict := policy
	strict.RequireReason = true

	tests := []struct {
		name      string
		policy    Policy
		namespace string
		reason    string
		rule      string
		want      string
	}{
		{name: "ordinary namespace", policy: policy, namespace: "shop"},
		{name: "namespace allowing only restricted", policy: policy, namespace: "payments", rule: "profile",
			want: "cp and edit act with the agent's root access, so they are allowed only where profile general is; " +
				"namespace payments does not allow it (namespaceProfiles.payments); allowed: restricted"},
		{name: "namespace listing general", policy: policy, namespace: "ops"},
		{name: "denied namespace", policy: policy, namespace: "kube-system", rule: "deniedNamespaces"},
		{name: "required reason missing", policy: strict, namespace: "shop", reason: " ", rule: "requireReason",
			want: "the agent's policy requires a reason for every session, cp and edit (requireReason): " +
				"pass --reason \"why you are debugging\""},
		{name: "required reason given", policy: strict, namespace: "shop", reason: "INC-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireDenial(t, tt.policy.checkFileOp(tt.namespace, tt.reason), tt.rule, tt.want)
		})
	}
}
