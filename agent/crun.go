package agent

import (
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// crunSpecVersion is the newest runtime-spec version that crun releases
// before 1.9 accept: they refuse any version string without "1.0" in it
// ("unknown version specified"), though they run the fields a tool
// container uses. containerd's default spec says 1.3.0.
const crunSpecVersion = "1.0.2-dev"

// adaptSpecForRuntime adjusts a built spec for the OCI runtime binary that
// will run it. It does no I/O.
func adaptSpecForRuntime(spec *specs.Spec, ociRuntime string) {
	if filepath.Base(ociRuntime) == "crun" {
		spec.Version = crunSpecVersion
	}
}
