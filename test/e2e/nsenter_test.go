package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nodedebug/nodedebug/test/harness"
)

// shareableNamespaces are the namespaces --share chooses among, in the
// order the checks read them.
var shareableNamespaces = []string{"net", "ipc", "uts"}

// TestNsenterPathNeverSharesTheNodesNamespaces guards H3: a namespace the
// tool does not join must be a fresh one of its own, never the node's,
// and a joined one must be the target's.
func TestNsenterPathNeverSharesTheNodesNamespaces(t *testing.T) {
	s := env(t)
	pod := s.runPod(t, harness.PodSpec{Containers: []harness.ContainerSpec{s.targetContainer("app")}})
	targetPid := s.targetPid(t, pod.ContainerIDs["app"])
	a := s.startPathAgent(t, "nsenter-share", "--path", "nsenter")

	tests := []struct {
		name   string
		flags  []string
		joined []string
	}{
		{"default share", nil, shareableNamespaces},
		{"share net", []string{"--share", "net"}, []string{"net"}},
		{"share ipc and uts", []string{"--share", "ipc,uts"}, []string{"ipc", "uts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := "for ns in " + strings.Join(shareableNamespaces, " ") +
				"; do readlink /proc/self/ns/$ns; done"
			args := slices.Concat(tt.flags, []string{pod.Spec.Name, "--", "sh", "-c", script})
			r := s.attachVia(t, a, nil, args...)
			requireCode(t, r, 0)

			seen := strings.Fields(string(r.stdout))
			if len(seen) != len(shareableNamespaces) {
				t.Fatalf("readlink printed %q, want one line per namespace", r.stdout)
			}
			for i, ns := range shareableNamespaces {
				requireNamespace(t, ns, seen[i], targetPid, slices.Contains(tt.joined, ns))
			}
		})
	}
}

// requireNamespace checks one namespace the tool saw: the target's when
// joined, otherwise neither the target's nor the node's. The node's are
// the test's own, which the agent inherits: /proc/1/ns may be closed to
// root in a sandbox.
func requireNamespace(t *testing.T, ns, seen string, targetPid int, joined bool) {
	t.Helper()
	node := readNamespace(t, os.Getpid(), ns)
	target := readNamespace(t, targetPid, ns)

	switch {
	case joined && seen != target:
		t.Errorf("%s namespace = %s, want the target's %s", ns, seen, target)
	case !joined && seen == node:
		t.Errorf("%s namespace = %s, the node's own; want a fresh one", ns, seen)
	case !joined && seen == target:
		t.Errorf("%s namespace = %s, the target's, though not shared", ns, seen)
	}
}

func readNamespace(t *testing.T, pid int, ns string) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatal(err)
	}
	return link
}
