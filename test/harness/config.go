package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// daemonConfig is everything the config.toml templates need. All paths live
// under the harness Dir so nothing touches a system containerd.
type daemonConfig struct {
	Root         string
	State        string
	Socket       string
	ShimSockets  string
	Opt          string
	RuncRoot     string
	Runtime      string
	SandboxImage string
	CNIBinDir    string
	CNIConfDir   string
}

// majorVersion pulls the major version out of `containerd --version`, which
// prints "containerd <module> <version> <revision>".
func majorVersion(out string) (int, error) {
	fields := strings.Fields(out)
	if len(fields) < 3 {
		return 0, fmt.Errorf("unexpected version output %q", out)
	}

	version := strings.TrimPrefix(fields[2], "v")
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("parse version %q: %w", fields[2], err)
	}
	return n, nil
}

// renderConfig picks the config schema the daemon understands: version 2 for
// containerd 1.x, version 3 for 2.x.
func renderConfig(major int, cfg daemonConfig) ([]byte, error) {
	tmpl := configV3
	if major < 2 {
		tmpl = configV2
	}

	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, cfg); err != nil {
		return nil, fmt.Errorf("render config for containerd %d.x: %w", major, err)
	}
	return buf.Bytes(), nil
}

// The snapshotters we never use fail their init on this kind of host and
// only add noise to the log. The 1.6 tasks service cannot start without the
// v1 runtime, so that stays, rooted under Dir instead of /run/containerd.
var configV2 = template.Must(template.New("v2").Parse(`version = 2
root = "{{.Root}}"
state = "{{.State}}"
imports = []
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = "{{.Socket}}"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Opt}}"

[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{{.RuncRoot}}-v1"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.SandboxImage}}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{{.Runtime}}"
        Root = "{{.RuncRoot}}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.CNIBinDir}}"
    conf_dir = "{{.CNIConfDir}}"
    max_conf_num = 1
`))

var configV3 = template.Must(template.New("v3").Parse(`version = 3
root = '{{.Root}}'
state = '{{.State}}'
imports = []
disabled_plugins = [
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.blockfile',
  'io.containerd.snapshotter.v1.erofs',
  'io.containerd.nri.v1.nri',
]

[grpc]
  address = '{{.Socket}}'

[ttrpc]
  address = ''

[debug]
  address = ''

[metrics]
  address = ''

[plugins.'io.containerd.internal.v1.opt']
  path = '{{.Opt}}'

[plugins.'io.containerd.shim.v1.manager']
  socket_dir = '{{.ShimSockets}}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'

  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{{.SandboxImage}}'

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []

  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '{{.Runtime}}'
        Root = '{{.RuncRoot}}'
        SystemdCgroup = false

  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{{.CNIBinDir}}']
    conf_dir = '{{.CNIConfDir}}'
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
`))

// cniNetwork is the bridge network each harness gets: its own bridge name
// and /24 so parallel harnesses do not share addresses.
type cniNetwork struct {
	Name    string
	Bridge  string
	Subnet  string
	DataDir string
}

// cniConfList renders the conflist: a bridge with host-local IPAM whose
// state stays under the harness Dir. There is no loopback entry because the
// CRI plugin always brings up lo itself, as its own network named lo.
func cniConfList(n cniNetwork) ([]byte, error) {
	list := map[string]any{
		"cniVersion": "0.4.0",
		"name":       n.Name,
		"plugins": []any{
			map[string]any{
				"type":      "bridge",
				"bridge":    n.Bridge,
				"isGateway": true,
				"ipMasq":    false,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": n.DataDir,
					"ranges":  [][]map[string]string{{{"subnet": n.Subnet}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
		},
	}
	return json.MarshalIndent(list, "", "  ")
}
