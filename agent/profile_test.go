package agent

import (
	"testing"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// profileInput is the tool container every profile test builds: only the
// profile changes between cases.
func profileInput(profile Profile) ToolSpec {
	return ToolSpec{ID: "nodedebug-p", Args: []string{"id"}, Env: []string{"PATH=/bin"}, Cwd: "/",
		TargetPid: 11, Share: []string{}, Profile: profile}
}

// withoutProfile is what BuildSpec changes for profileInput whatever the
// profile.
func withoutProfile(s *specs.Spec) {
	s.Process.Args = []string{"id"}
	s.Process.Env = []string{"PATH=/bin"}
	setNamespace(s, specs.PIDNamespace, "/proc/11/ns/pid")
}

func setCaps(s *specs.Spec, caps []string) {
	s.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding: caps, Effective: caps, Permitted: caps,
	}
}

func TestProfiles(t *testing.T) {
	tests := []struct {
		profile string
		want    func(*specs.Spec)
	}{
		{profile: "general", want: func(s *specs.Spec) {
			addCap(s, "CAP_SYS_PTRACE")
		}},
		{profile: "baseline", want: func(*specs.Spec) {}},
		{profile: "restricted", want: func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 65534, GID: 65534}
			setCaps(s, nil)
			s.Process.NoNewPrivileges = true
			s.Linux.Seccomp = seccomp.DefaultProfile(s)
		}},
		{profile: "netadmin", want: func(s *specs.Spec) {
			addCap(s, "CAP_SYS_PTRACE")
			addCap(s, "CAP_NET_ADMIN")
			// CAP_NET_RAW is among containerd's defaults already.
		}},
		{profile: "sysadmin", want: func(s *specs.Spec) {
			setCaps(s, currentCaps(t))
			s.Linux.MaskedPaths = nil
			s.Linux.ReadonlyPaths = nil
			setMountOptions(s, "/sys", []string{"nosuid", "noexec", "nodev", "rw"})
			setMountOptions(s, "/sys/fs/cgroup", []string{"ro", "nosuid", "noexec", "nodev"})
			s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
			s.Process.NoNewPrivileges = false
		}},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			profile, err := LookupProfile(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			in := profileInput(profile)
			got, err := BuildSpec(in)
			if err != nil {
				t.Fatal(err)
			}

			want := baseSpec(t, in.ID)
			withoutProfile(want)
			tt.want(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("profile %s: spec mismatch (-want +got):\n%s", tt.profile, diff)
			}
		})
	}
}

func currentCaps(t *testing.T) []string {
	t.Helper()
	caps, err := cap.Current()
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

func setMountOptions(s *specs.Spec, dest string, options []string) {
	for i, m := range s.Mounts {
		if m.Destination == dest {
			s.Mounts[i].Options = options
		}
	}
}

func TestUnknownProfileListsTheKnownOnes(t *testing.T) {
	_, err := LookupProfile("root")
	want := `unknown profile "root": choose from baseline, general, netadmin, restricted, sysadmin`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestCustomLaidOverProfile(t *testing.T) {
	general, err := LookupProfile("general")
	if err != nil {
		t.Fatal(err)
	}
	custom, err := ParseCustom([]byte("user: {uid: 1000, gid: 1000}\nenv: [DEBUG=1]\ncwd: /tmp\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := profileInput(general)
	in.Custom = custom

	got, err := BuildSpec(in)
	if err != nil {
		t.Fatal(err)
	}

	want := baseSpec(t, in.ID)
	withoutProfile(want)
	addCap(want, "CAP_SYS_PTRACE")
	want.Process.User = specs.User{UID: 1000, GID: 1000}
	want.Process.Env = append(want.Process.Env, "DEBUG=1")
	want.Process.Cwd = "/tmp"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("spec mismatch (-want +got):\n%s", diff)
	}
}

func TestParseCustomRejects(t *testing.T) {
	tests := map[string]string{
		"unknown field":     `{"usr": {"uid": 1}}`,
		"args":              `{"args": ["sh"]}`,
		"terminal":          "terminal: true\n",
		"relative cwd":      "cwd: tmp\n",
		"not a process":     "[1, 2]\n",
		"unknown nested":    "user: {uid: 1, name: x}\n",
		"wrong type of uid": `{"user": {"uid": "root"}}`,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseCustom([]byte(data)); err == nil {
				t.Fatalf("ParseCustom(%q) accepted it", data)
			}
		})
	}
}
