package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/nodedebug/nodedebug/api"
)

// ErrNoAgent means no running agent serves the target's node.
var ErrNoAgent = errors.New("no running nodedebug agent on the node")

// agentDialer finds a node's agent pod and opens mutual-TLS gRPC to it.
type agentDialer struct {
	client kubernetes.Interface
	cfg    AgentConfig
	tls    *tls.Config
}

func newAgentDialer(client kubernetes.Interface, cfg AgentConfig) (*agentDialer, error) {
	cert, pool, err := api.LoadMutualTLS(cfg.CertFile, cfg.KeyFile, cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("gateway client TLS for agents: %w", err)
	}

	return &agentDialer{client: client, cfg: cfg, tls: &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   cfg.ServerName,
		MinVersion:   tls.VersionTLS13,
	}}, nil
}

// dial connects to the agent on node. The caller closes the connection.
func (d *agentDialer) dial(ctx context.Context, node string) (api.AgentClient, func(), error) {
	address, err := d.address(ctx, node)
	if err != nil {
		return nil, nil, err
	}

	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(credentials.NewTLS(d.tls)))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to agent %s on node %s: %w", address, node, err)
	}
	return api.NewAgentClient(conn), func() { conn.Close() }, nil
}

// address is the pod IP and port of a running, ready agent on node.
func (d *agentDialer) address(ctx context.Context, node string) (string, error) {
	pods, err := d.client.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: d.cfg.Selector,
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return "", fmt.Errorf("list agent pods in %s on node %s: %w", d.cfg.Namespace, node, err)
	}

	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" && ready(pod) {
			return net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(d.cfg.Port)), nil
		}
	}
	return "", fmt.Errorf("%w %s (%d agent pods match %q in namespace %s; is the DaemonSet running there?)",
		ErrNoAgent, node, len(pods.Items), d.cfg.Selector, d.cfg.Namespace)
}

func ready(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
