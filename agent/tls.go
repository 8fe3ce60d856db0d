package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/nodedebug/nodedebug/api"
)

// ErrNotGateway means a TLS client presented a certificate that is not the
// gateway's.
var ErrNotGateway = errors.New("client certificate is not the gateway's")

// TLSListen is the agent's mutual-TLS listener for the gateway, on the
// agent's pod IP. Only a client certificate signed by ClientCAFile with
// the common name ClientName gets through.
type TLSListen struct {
	Address      string
	CertFile     string
	KeyFile      string
	ClientCAFile string
	ClientName   string
}

// Caller is who a session is for. Over the unix socket it is unknown
// (whoever is root on the node); over TLS it is the user the gateway
// verified.
type Caller struct {
	User   string
	Groups []string
}

type callerKey struct{}

// CallerFrom returns the verified caller of a session's context.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// serveTLS starts the gateway listener when one is configured. It returns
// the server (nil when none) so Serve can stop it with the unix one.
func (a *Agent) serveTLS(ctx context.Context, served chan<- error) (*grpc.Server, error) {
	cfg := a.cfg.TLS
	if cfg == nil || cfg.Address == "" {
		return nil, nil
	}

	tlsConfig, err := cfg.serverConfig()
	if err != nil {
		return nil, err
	}
	listener, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listen for the gateway on %s: %w", cfg.Address, err)
	}

	opts := append(streamWindows(), grpc.Creds(credentials.NewTLS(tlsConfig)),
		grpc.ChainStreamInterceptor(withCaller), grpc.ChainUnaryInterceptor(withCallerUnary))
	server := grpc.NewServer(append(opts, recoverCalls(a.log)...)...)
	api.RegisterAgentServer(server, &service{agent: a})
	go func() { served <- server.Serve(listener) }()
	a.log.InfoContext(ctx, "agent listening for the gateway", "address", listener.Addr().String(),
		"client", cfg.ClientName)
	return server, nil
}

func (cfg *TLSListen) serverConfig() (*tls.Config, error) {
	cert, pool, err := api.LoadMutualTLS(cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("agent TLS listener: %w", err)
	}

	return &tls.Config{
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        pool,
		MinVersion:       tls.VersionTLS13,
		VerifyConnection: cfg.verifyGateway,
	}, nil
}

// verifyGateway runs after the chain is verified: the CA may sign more
// than the gateway, so the name must match too.
func (cfg *TLSListen) verifyGateway(state tls.ConnectionState) error {
	if len(state.PeerCertificates) == 0 {
		return ErrNotGateway
	}
	if name := state.PeerCertificates[0].Subject.CommonName; name != cfg.ClientName {
		return fmt.Errorf("%w: common name %q, want %q", ErrNotGateway, name, cfg.ClientName)
	}
	return nil
}

// withCaller puts the user the gateway names into the stream's context.
// Only the TLS server has it: the unix socket's clients could claim anyone.
func withCaller(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &callerStream{ServerStream: ss, ctx: gatewayCaller(ss.Context())})
}

func withCallerUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(gatewayCaller(ctx), req)
}

func gatewayCaller(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	caller := Caller{User: first(md.Get(api.MetadataUser))}
	if groups := first(md.Get(api.MetadataGroups)); groups != "" {
		caller.Groups = strings.Split(groups, ",")
	}
	return context.WithValue(ctx, callerKey{}, caller)
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}
