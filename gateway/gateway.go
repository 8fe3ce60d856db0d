// Package gateway serves nodedebug's aggregated API: the Kubernetes API
// server authenticates the user, checks RBAC on pods/attach in the
// nodedebug.io group and audits the request, then proxies it here with
// the user in front-proxy headers. The gateway verifies those headers,
// checks that the user may also exec into the pod, finds the agent on the
// pod's node and bridges the remote-command websocket to the agent's gRPC
// stream over mutual TLS.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is how the gateway was started.
type Config struct {
	// Listen is the address to serve HTTPS on, ":8443".
	Listen string
	// TLSCertFile and TLSKeyFile are the serving certificate; the
	// APIService's caBundle verifies it.
	TLSCertFile string
	TLSKeyFile  string
	// Kubeconfig reaches the API server; empty means in-cluster.
	Kubeconfig string

	Agents AgentConfig

	Log *slog.Logger
}

// AgentConfig says how to find and reach the agents.
type AgentConfig struct {
	// Namespace and Selector find the agent pods.
	Namespace string
	Selector  string
	// Port is the agents' mutual-TLS gRPC port on their pod IP.
	Port int
	// CAFile verifies the agents; CertFile and KeyFile are the gateway's
	// client identity, the only one the agents accept.
	CAFile   string
	CertFile string
	KeyFile  string
	// ServerName is the name in the agents' certificate.
	ServerName string
}

// shutdownTimeout bounds the wait for open sessions at shutdown.
const shutdownTimeout = 10 * time.Second

// Gateway serves the aggregated API.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	client kubernetes.Interface
	authn  *frontProxy
	agents *agentDialer
}

// New connects to the API server and loads the front-proxy settings the
// API server publishes in kube-system/extension-apiserver-authentication.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}

	restConfig, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q (empty: in-cluster): %w", cfg.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", restConfig.Host, err)
	}

	authn, err := newFrontProxy(ctx, client)
	if err != nil {
		return nil, err
	}
	agents, err := newAgentDialer(client, cfg.Agents)
	if err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, log: cfg.Log, client: client, authn: authn, agents: agents}, nil
}

// Serve answers on cfg.Listen until ctx ends.
func (g *Gateway) Serve(ctx context.Context) error {
	cert, err := tls.LoadX509KeyPair(g.cfg.TLSCertFile, g.cfg.TLSKeyFile)
	if err != nil {
		return fmt.Errorf("load serving certificate %s: %w", g.cfg.TLSCertFile, err)
	}
	listener, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", g.cfg.Listen, err)
	}

	server := &http.Server{
		Handler:           g.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		// The front proxy's client certificate is checked per request
		// against the CA the API server publishes, which can change.
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequestClientCert,
			MinVersion:   tls.VersionTLS12,
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
	}

	served := make(chan error, 1)
	go func() { served <- server.ServeTLS(listener, "", "") }()
	g.log.InfoContext(ctx, "gateway listening", "address", listener.Addr().String())

	select {
	case err = <-served:
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		err = server.Shutdown(shutdownCtx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
