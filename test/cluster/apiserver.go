package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// readyTimeout bounds the wait for one component to become ready.
const readyTimeout = 90 * time.Second

// auditPolicy records every request's metadata, and skips the noise of
// the components themselves so the test can read the log quickly.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["kubelet", "system:apiserver", "system:kube-aggregator"]
- level: None
  nonResourceURLs: ["/readyz*", "/healthz*", "/livez*"]
- level: Metadata
`

// certs is every key pair the control plane needs.
type certs struct {
	ca, frontProxyCA *CA
	serving, proxy   KeyPair
	saKey            string
}

func (c *Cluster) makeCerts() (*certs, error) {
	dir := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}

	ca, err := NewCA(dir, "ca")
	if err != nil {
		return nil, err
	}
	frontProxyCA, err := NewCA(dir, "front-proxy-ca")
	if err != nil {
		return nil, err
	}
	out := &certs{ca: ca, frontProxyCA: frontProxyCA, saKey: filepath.Join(dir, "sa.key")}

	out.serving, err = ca.Issue(CertSpec{
		Name:       "apiserver",
		CommonName: "kube-apiserver",
		DNSNames:   []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"},
		IPs:        []net.IP{c.HostIP, net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)},
		Server:     true,
	})
	if err != nil {
		return nil, err
	}
	out.proxy, err = frontProxyCA.Issue(CertSpec{
		Name: "front-proxy-client", CommonName: "front-proxy-client", Client: true,
	})
	if err != nil {
		return nil, err
	}
	return out, WriteKey(out.saKey)
}

func (c *Cluster) startEtcd() error {
	clientPort, peerPort := freePort(), freePort()
	if clientPort == 0 || peerPort == 0 {
		return fmt.Errorf("find free ports for etcd: none left on 127.0.0.1")
	}
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)

	var err error
	c.etcd, err = StartProcess("etcd", filepath.Join(c.Dir, "etcd.log"), nil,
		filepath.Join(c.binDir, "etcd"),
		"--name=default",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+c.etcdURL,
		"--advertise-client-urls="+c.etcdURL,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	return err
}

func (c *Cluster) startAPIServer(ctx context.Context, pki *certs) error {
	port := freePort()
	if port == 0 {
		return fmt.Errorf("find a free port for kube-apiserver on %s", c.HostIP)
	}
	c.Server = "https://" + net.JoinHostPort(c.HostIP.String(), strconv.Itoa(port))
	c.AuditLog = filepath.Join(c.Dir, "audit.log")
	policy := filepath.Join(c.Dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return fmt.Errorf("write audit policy: %w", err)
	}
	tokens, err := c.writeTokens()
	if err != nil {
		return err
	}

	c.apiserver, err = StartProcess("kube-apiserver", filepath.Join(c.Dir, "kube-apiserver.log"), nil,
		filepath.Join(c.binDir, "kube-apiserver"), c.apiserverArgs(pki, port, tokens, policy)...)
	if err != nil {
		return err
	}
	return c.waitAPIServer(ctx, pki.ca.CertFile)
}

func (c *Cluster) apiserverArgs(pki *certs, port int, tokens, policy string) []string {
	return []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=" + c.HostIP.String(),
		"--advertise-address=" + c.HostIP.String(),
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(c.Dir, "pki"),
		"--tls-cert-file=" + pki.serving.CertFile,
		"--tls-private-key-file=" + pki.serving.KeyFile,
		"--client-ca-file=" + pki.ca.CertFile,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=none",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pki.saKey,
		"--service-account-signing-key-file=" + pki.saKey,
		// The aggregation layer: the API server proves itself to the
		// gateway with this client certificate and passes the user on in
		// these headers.
		"--requestheader-client-ca-file=" + pki.frontProxyCA.CertFile,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + pki.proxy.CertFile,
		"--proxy-client-key-file=" + pki.proxy.KeyFile,
		// No kube-proxy here: reach APIService backends at their endpoints.
		"--enable-aggregator-routing=true",
		"--audit-log-path=" + c.AuditLog,
		"--audit-policy-file=" + policy,
		"--profiling=false",
	}
}

// writeTokens writes the static token file: the admin, kubelet and the
// test's users.
func (c *Cluster) writeTokens() (string, error) {
	var b strings.Builder
	for _, u := range c.users {
		fmt.Fprintf(&b, "%s,%s,%s,\"%s\"\n", u.Token, u.Name, u.Name, strings.Join(u.Groups, ","))
	}

	path := filepath.Join(c.Dir, "tokens.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("write token file: %w", err)
	}
	return path, nil
}

// waitAPIServer polls /readyz until it answers 200.
func (c *Cluster) waitAPIServer(ctx context.Context, caFile string) error {
	client, err := httpClient(caFile)
	if err != nil {
		return err
	}

	return c.poll(ctx, c.apiserver, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/readyz", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.users[AdminUser].Token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz answered %s", resp.Status)
		}
		return nil
	})
}

// poll calls check until it succeeds, p exits, or readyTimeout passes.
func (c *Cluster) poll(ctx context.Context, p *Process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	for {
		attempt, done := context.WithTimeout(ctx, 5*time.Second)
		err := check(attempt)
		done()
		if err == nil {
			return nil
		}

		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during start (last check: %w)\n%s", p.name, err, p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last check: %v)\n%s", p.name, ctx.Err(), err, p.LogTail())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func httpClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)

	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return &http.Client{Transport: transport, Timeout: 5 * time.Second}, nil
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago, or
// 0. Components bind it right after; a clash fails their start loudly.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
