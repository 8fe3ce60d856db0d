package harness

import "testing"

func TestSandboxConfigHostnameFollowsNetworkMode(t *testing.T) {
	tests := []struct {
		name        string
		hostNetwork bool
		want        string
	}{
		{name: "pod network gets the pod name", want: "web"},
		{name: "host network gets none", hostNetwork: true, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := PodSpec{Namespace: "ns", Name: "web", UID: "u", HostNetwork: tt.hostNetwork}
			got := sandboxConfig(spec, "/logs", "/cg", 0).GetHostname()
			if got != tt.want {
				t.Errorf("hostname = %q, want %q", got, tt.want)
			}
		})
	}
}
