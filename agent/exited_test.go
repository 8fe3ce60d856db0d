package agent

import (
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestExitedMountsAreReadOnlyAndKeepTheWritableLayer(t *testing.T) {
	snapshot := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"index=off", "workdir=/s/9/work", "upperdir=/s/9/fs", "lowerdir=/s/2/fs:/s/1/fs", "volatile"}}}
	volumes := []*runtimeapi.Mount{{HostPath: "/var/lib/kubelet/x", ContainerPath: "data/../data/"}}

	got, err := exitedMounts(snapshot, volumes, TargetDir)
	if err != nil {
		t.Fatal(err)
	}

	want := []specs.Mount{
		{Destination: "/target", Type: "overlay", Source: "overlay",
			Options: []string{"index=off", "lowerdir=/s/9/fs:/s/2/fs:/s/1/fs", "ro"}},
		{Destination: "/target/data", Type: "bind", Source: "/var/lib/kubelet/x", Options: []string{"rbind", "ro"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("mounts (-want +got):\n%s", diff)
	}
}

func TestExitedMountsOfSnapshotWithoutParent(t *testing.T) {
	got, err := exitedMounts([]mount.Mount{{Type: "bind", Source: "/s/1/fs", Options: []string{"rbind", "rw"}}}, nil, "/")
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.Mount{{Destination: "/", Type: "bind", Source: "/s/1/fs", Options: []string{"rbind", "ro"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("mounts (-want +got):\n%s", diff)
	}

	if _, err := exitedMounts([]mount.Mount{{Type: "erofs"}}, nil, "/"); err == nil {
		t.Fatal("want an error for an unsupported snapshot mount")
	}
}
