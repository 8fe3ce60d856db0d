package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodedebug/nodedebug/test/harness"
)

// hybridCgroupControllers returns the controllers of the cgroup v2
// hierarchy of a hybrid cgroup layout. crun before 1.9 refuses to run
// when that list is not empty; changing it means remounting the node's
// cgroups, which a test must not do.
func hybridCgroupControllers() string {
	data, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// TestAttachWithCrun runs the path checks on the containerd path with
// crun as the OCI runtime of tool containers.
func TestAttachWithCrun(t *testing.T) {
	s := env(t)
	if _, err := exec.LookPath("crun"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but crun is not installed (test/install-deps.sh installs it)")
		}
		t.Skip("crun is not installed")
	}
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	targetPid := s.targetPid(t, pod.ContainerIDs["app"])
	a := s.startPathAgent(t, "crun", "--path", "containerd", "--oci-runtime", "crun")

	first := s.attachVia(t, a, nil, pod.Spec.Name, "--", "true")
	if controllers := hybridCgroupControllers(); controllers != "" && first.code != 0 {
		if !bytes.Contains(first.stderr, []byte("hybrid mode not supported")) {
			t.Fatalf("crun failed for another reason than the hybrid cgroup layout: %s", first)
		}
		// What can be checked here: the refusal is that one, clear, and
		// leaves nothing behind. The full checks need a pure v1 or v2 node.
		s.requireNoToolContainers(t, 10*time.Second)
		requireOnlyTarget(t, targetPid, 10*time.Second)
		t.Logf("crun refuses this node's hybrid cgroup layout (cgroup v2 holds %q); checked the refusal only: %s",
			controllers, strings.TrimSpace(string(first.stderr)))
		return
	}
	requireCode(t, first, 0)

	for _, check := range pathChecks {
		t.Run(check.name, func(t *testing.T) { check.run(t, s, a, pod) })
	}
	requireOnlyTarget(t, targetPid, 10*time.Second)
	s.requireNoToolContainers(t, 10*time.Second)
}
