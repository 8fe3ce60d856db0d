package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The policy the DaemonSet ships must load, and must say what the
// built-in defaults say for an agent in namespace nodedebug.
func TestDeployedPolicyIsTheDefault(t *testing.T) {
	got, err := LoadPolicy("../deploy/policy.yaml", "nodedebug")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultPolicy("nodedebug"), got); diff != "" {
		t.Fatalf("deploy/policy.yaml differs from the defaults (-default +deployed):\n%s", diff)
	}
}
