// Package cluster starts a real single-node Kubernetes cluster for the
// integration tests: etcd, kube-apiserver with the aggregation layer and an
// audit log, and a kubelet on a harness containerd. Every address is on
// this machine; the API server and kubelet listen on the host end of a
// veth pair into a network namespace the cluster creates, so components
// placed in that namespace (the gateway) reach them, and they reach it,
// over a non-loopback address.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/nodedebug/nodedebug/test/harness"
)

// EnvBinDir names the folder with kube-apiserver, kubelet, kubectl and
// etcd, as test/cluster/build.sh leaves them.
const EnvBinDir = "NODEDEBUG_K8S_BIN"

// DefaultBinDir is build.sh's default output folder.
const DefaultBinDir = "/opt/nodedebug-test/k8s-v1.37.2/bin"

// The users every cluster has.
const (
	AdminUser   = "admin"
	KubeletUser = "kubelet"
)

// User is a user of the static token file.
type User struct {
	Name   string
	Groups []string
	Token  string
}

// Options configure Start.
type Options struct {
	// Dir holds everything; Stop removes what the components left in it.
	Dir string
	// BinDir has the binaries; default $NODEDEBUG_K8S_BIN or DefaultBinDir.
	BinDir string
	// Containerd is the runtime kubelet drives; it must be kubelet's alone.
	Containerd *harness.Containerd
	// Users are added to the token file next to admin and kubelet.
	Users []string
	// NetnsIndex picks 172.31.N.0/30 for the namespace; default random.
	NetnsIndex int
	Logger     *slog.Logger
}

// Cluster is a running single-node cluster.
type Cluster struct {
	Dir string
	// Server is the API server URL, on Netns.HostIP.
	Server string
	// HostIP is the address of the API server and the node.
	HostIP net.IP
	// Netns is the namespace for components that need an address of
	// their own.
	Netns *Netns
	// CAFile verifies the API server; it also signed the clients' certs.
	CAFile string
	// AuditLog is the API server's audit log (JSON lines).
	AuditLog string
	NodeName string
	// Config and Client act as the admin.
	Config *rest.Config
	Client kubernetes.Interface

	log        *slog.Logger
	binDir     string
	containerd *harness.Containerd
	users      map[string]User
	etcdURL    string
	etcd       *Process
	apiserver  *Process
	kubelet    *Process
	sysctls    map[string]string

	createdHostDir bool
	createdLogDir  bool
}

// Start brings up etcd, kube-apiserver and kubelet and waits until the
// node is Ready. On error the returned cluster still needs Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := newCluster(opts)
	if err != nil {
		return c, err
	}

	started := time.Now()
	if err := c.start(ctx); err != nil {
		return c, err
	}
	c.log.Info("cluster ready", "server", c.Server, "node", c.NodeName,
		"took", time.Since(started).Round(time.Millisecond))
	return c, nil
}

func newCluster(opts Options) (*Cluster, error) {
	if opts.Dir == "" || opts.Containerd == nil {
		return nil, errors.New("cluster options: Dir and Containerd are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}

	c := &Cluster{
		Dir:        opts.Dir,
		NodeName:   "node-1",
		log:        opts.Logger,
		binDir:     BinDir(opts.BinDir),
		containerd: opts.Containerd,
		users:      map[string]User{},
	}
	for _, name := range append([]string{AdminUser, KubeletUser}, opts.Users...) {
		c.users[name] = User{Name: name, Token: randomHex()}
	}
	c.users[AdminUser] = withGroups(c.users[AdminUser], "system:masters")
	// A shortcut: kubelet acts as admin instead of as a node with the
	// Node authorizer, which nothing here exercises.
	c.users[KubeletUser] = withGroups(c.users[KubeletUser], "system:masters")
	return c, os.MkdirAll(c.Dir, 0o700)
}

func withGroups(u User, groups ...string) User {
	u.Groups = groups
	return u
}

// BinDir resolves the folder of the cluster binaries.
func BinDir(dir string) string {
	if dir == "" {
		dir = os.Getenv(EnvBinDir)
	}
	if dir == "" {
		dir = DefaultBinDir
	}
	return dir
}

func (c *Cluster) start(ctx context.Context) error {
	n := 1 + int(randomByte())%250
	ns, err := NewNetns(fmt.Sprintf("nd%d", os.Getpid()), n)
	c.Netns = ns
	if err != nil {
		return err
	}
	c.HostIP = ns.HostIP

	pki, err := c.makeCerts()
	if err != nil {
		return err
	}
	c.CAFile = pki.ca.CertFile

	if err := c.startEtcd(); err != nil {
		return err
	}
	if err := c.startAPIServer(ctx, pki); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	return c.startKubelet(ctx, pki)
}

func (c *Cluster) connect() error {
	var err error
	c.Config = c.RESTConfig(AdminUser)
	c.Client, err = kubernetes.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("client for %s: %w", c.Server, err)
	}
	return nil
}

// RESTConfig is a client config acting as user.
func (c *Cluster) RESTConfig(user string) *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     c.users[user].Token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
	}
}

// WriteKubeconfig writes a kubeconfig for user and returns its path.
func (c *Cluster) WriteKubeconfig(user string) (string, error) {
	u, ok := c.users[user]
	if !ok {
		return "", fmt.Errorf("write kubeconfig: no user %q in the token file", user)
	}
	return c.WriteTokenKubeconfig(user, u.Token)
}

// WriteTokenKubeconfig writes a kubeconfig named name that authenticates
// with token, for example a service account's.
func (c *Cluster) WriteTokenKubeconfig(name, token string) (string, error) {
	config := clientcmdapi.NewConfig()
	config.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthority: c.CAFile}
	config.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	config.Contexts[name] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name, Namespace: "default"}
	config.CurrentContext = name

	path := filepath.Join(c.Dir, "kubeconfig-"+name)
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		return "", fmt.Errorf("write kubeconfig of %s: %w", name, err)
	}
	return path, nil
}

// Kubectl is the kubectl binary next to the cluster's.
func (c *Cluster) Kubectl() string { return filepath.Join(c.binDir, "kubectl") }

// Stop stops kubelet, the API server and etcd, restores what kubelet
// changed and removes the network namespace. The caller stops the
// containerd afterwards; it removes the pods and the cgroups.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}

	var errs []error
	for _, p := range []*Process{c.kubelet, c.apiserver, c.etcd} {
		if p != nil {
			errs = append(errs, p.Stop())
		}
	}
	if c.sysctls != nil {
		errs = append(errs, c.restoreSysctls())
	}
	if c.kubelet != nil {
		errs = append(errs, c.removeLeftovers())
	}
	if c.Netns != nil {
		errs = append(errs, c.Netns.Remove())
	}
	return errors.Join(errs...)
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomByte() byte {
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	return b[0]
}

// Containerd is the runtime kubelet drives.
func (c *Cluster) Containerd() *harness.Containerd { return c.containerd }
