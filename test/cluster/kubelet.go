package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletSysctls are the kernel settings kubelet changes at start; Stop
// puts back what they were before.
var kubeletSysctls = []string{
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

// kubeletConfig keeps kubelet off everything it does not own: its own
// root, logs and plugin folders, pods under the harness's cgroup parent,
// no iptables chains, ports on our addresses only, and no image garbage
// collection (the test images cannot be pulled again).
var kubeletConfig = template.Must(template.New("kubelet").Parse(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {{.Address}}
port: {{.Port}}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {{.HealthzPort}}
containerRuntimeEndpoint: unix://{{.Socket}}
imageServiceEndpoint: unix://{{.Socket}}
cgroupDriver: cgroupfs
cgroupRoot: {{.CgroupRoot}}
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
tlsCertFile: {{.CertFile}}
tlsPrivateKeyFile: {{.KeyFile}}
podLogsDir: {{.Dir}}/pod-logs
volumePluginDir: {{.Dir}}/volume-plugins
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: {{.ClientCA}}}
authorization:
  mode: AlwaysAllow
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
`))

type kubeletParams struct {
	Address, Socket, CgroupRoot, CertFile, KeyFile, Dir, ClientCA string
	Port, HealthzPort                                             int
}

func (c *Cluster) startKubelet(ctx context.Context, pki *certs) error {
	dir := filepath.Join(c.Dir, "kubelet")
	if err := os.MkdirAll(filepath.Join(dir, "pod-logs"), 0o755); err != nil {
		return fmt.Errorf("create kubelet folder: %w", err)
	}
	if err := makeCgroupRoot(c.containerd.CgroupParent); err != nil {
		return err
	}
	if err := c.saveSysctls(); err != nil {
		return err
	}
	c.noteHostDirs()

	config, err := c.writeKubeletConfig(dir, pki)
	if err != nil {
		return err
	}
	kubeconfig, err := c.WriteKubeconfig(KubeletUser)
	if err != nil {
		return err
	}

	c.kubelet, err = StartProcess("kubelet", filepath.Join(c.Dir, "kubelet.log"), nil,
		filepath.Join(c.binDir, "kubelet"),
		"--config="+config,
		"--kubeconfig="+kubeconfig,
		"--root-dir="+filepath.Join(dir, "root"),
		"--cert-dir="+filepath.Join(dir, "pki"),
		"--hostname-override="+c.NodeName,
		"--node-ip="+c.HostIP.String(),
		"--v=1",
	)
	if err != nil {
		return err
	}
	return c.poll(ctx, c.kubelet, c.nodeReady)
}

func (c *Cluster) writeKubeletConfig(dir string, pki *certs) (string, error) {
	serving, err := pki.ca.Issue(CertSpec{
		Name: "kubelet", CommonName: c.NodeName, DNSNames: []string{c.NodeName},
		IPs: []net.IP{c.HostIP}, Server: true,
	})
	if err != nil {
		return "", err
	}

	params := kubeletParams{
		Address: c.HostIP.String(), Socket: c.containerd.Socket,
		CgroupRoot: c.containerd.CgroupParent, CertFile: serving.CertFile,
		KeyFile: serving.KeyFile, Dir: dir, ClientCA: pki.ca.CertFile,
		Port: freePort(), HealthzPort: freePort(),
	}
	var b strings.Builder
	if err := kubeletConfig.Execute(&b, params); err != nil {
		return "", fmt.Errorf("render kubelet config: %w", err)
	}

	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("write kubelet config: %w", err)
	}
	return path, nil
}

func (c *Cluster) nodeReady(ctx context.Context) error {
	node, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("node %s is not Ready yet", c.NodeName)
}

// makeCgroupRoot creates kubelet's cgroup root in every hierarchy; kubelet
// refuses a root that does not exist. The harness removes the tree.
func makeCgroupRoot(parent string) error {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")

	for _, root := range roots {
		if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
			continue
		}
		dir := filepath.Join(root, parent)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create kubelet cgroup root %s: %w", dir, err)
		}
	}
	return nil
}

func (c *Cluster) saveSysctls() error {
	c.sysctls = map[string]string{}
	for _, name := range kubeletSysctls {
		data, err := os.ReadFile("/proc/sys/" + name)
		if err != nil {
			return fmt.Errorf("read sysctl %s before kubelet changes it: %w", name, err)
		}
		c.sysctls[name] = strings.TrimSpace(string(data))
	}
	return nil
}

// restoreSysctls writes back every saved value kubelet changed.
func (c *Cluster) restoreSysctls() error {
	var errs []error
	for name, value := range c.sysctls {
		data, err := os.ReadFile("/proc/sys/" + name)
		if err == nil && strings.TrimSpace(string(data)) == value {
			continue
		}
		if err := os.WriteFile("/proc/sys/"+name, []byte(value), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", name, value, err))
		}
	}
	return errors.Join(errs...)
}
