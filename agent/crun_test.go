package agent

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestAdaptSpecForRuntime(t *testing.T) {
	tests := []struct {
		runtime string
		want    string
	}{
		{runtime: "", want: "1.3.0"},
		{runtime: "runc", want: "1.3.0"},
		{runtime: "crun", want: crunSpecVersion},
		{runtime: "/usr/bin/crun", want: crunSpecVersion},
	}
	for _, tt := range tests {
		t.Run(tt.runtime, func(t *testing.T) {
			spec := &specs.Spec{Version: "1.3.0"}
			adaptSpecForRuntime(spec, tt.runtime)
			if spec.Version != tt.want {
				t.Errorf("version = %s, want %s", spec.Version, tt.want)
			}
		})
	}
}
