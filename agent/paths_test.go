package agent

import (
	"errors"
	"testing"
)

func TestChoosePath(t *testing.T) {
	tests := []struct {
		runtime, requested string
		want               string
		wantErr            error
	}{
		{runtime: "containerd", requested: "", want: PathContainerd},
		{runtime: "containerd", requested: PathAuto, want: PathContainerd},
		{runtime: "cri-o", requested: PathAuto, want: PathCRI},
		{runtime: "docker", requested: "", want: PathCRI},
		{runtime: "containerd", requested: PathCRI, want: PathCRI},
		{runtime: "containerd", requested: PathNsenter, want: PathNsenter},
		{runtime: "cri-o", requested: PathNsenter, want: PathNsenter},
		{runtime: "cri-o", requested: PathContainerd, wantErr: ErrNotContainerd},
		{runtime: "containerd", requested: "docker", wantErr: ErrBadRequest},
	}

	for _, tt := range tests {
		t.Run(tt.runtime+"/"+tt.requested, func(t *testing.T) {
			got, err := ChoosePath(tt.runtime, tt.requested)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ChoosePath error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ChoosePath = %q, want %q", got, tt.want)
			}
		})
	}
}
