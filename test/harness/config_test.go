package harness

import (
	"context"
	"strings"
	"testing"
)

func TestMajorVersion(t *testing.T) {
	tests := []struct {
		out  string
		want int
	}{
		{"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n", 1},
		{"containerd github.com/containerd/containerd/v2 2.4.2+unknown \n", 2},
		{"containerd github.com/containerd/containerd v1.7.27 05044ec0a9a7\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.out, func(t *testing.T) {
			got, err := majorVersion(tt.out)
			if err != nil || got != tt.want {
				t.Errorf("majorVersion = %d, %v; want %d", got, err, tt.want)
			}
		})
	}

	if _, err := majorVersion("garbage"); err == nil {
		t.Error("majorVersion(garbage) succeeded")
	}
}

func TestRenderConfigPicksSchemaByMajor(t *testing.T) {
	cfg := daemonConfig{Root: "/r", State: "/s", Socket: "/x.sock", SandboxImage: "p:t"}
	tests := []struct {
		major int
		want  []string
	}{
		{1, []string{"version = 2", `plugins."io.containerd.grpc.v1.cri"`, "restrict_oom_score_adj = true"}},
		{2, []string{"version = 3", "plugins.'io.containerd.cri.v1.runtime'", "restrict_oom_score_adj = true"}},
	}
	for _, tt := range tests {
		data, err := renderConfig(tt.major, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range tt.want {
			if !strings.Contains(string(data), want) {
				t.Errorf("config for %d.x lacks %q", tt.major, want)
			}
		}
	}
}

// TestStopAfterFailedStart guards that a start that never got a daemon
// still cleans up its folders.
func TestStopAfterFailedStart(t *testing.T) {
	dir := t.TempDir() + "/c"
	c, err := StartContainerd(context.Background(), Options{Dir: dir, Binary: "/bin/false", Runtime: "/bin/true"})
	if err == nil {
		t.Fatal("start with /bin/false succeeded")
	}
	if err := c.Stop(); err != nil {
		t.Errorf("stop after failed start: %v", err)
	}

	var nilC *Containerd
	if err := nilC.Stop(); err != nil {
		t.Errorf("stop on nil: %v", err)
	}
}
