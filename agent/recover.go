package agent

import (
	"context"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recoverCalls keeps one call's bug from taking down the agent and every
// other session on the node: a panic becomes an Internal error for that
// caller and a log line with the stack.
func recoverCalls(log *slog.Logger) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo,
			handler grpc.UnaryHandler) (resp any, err error) {
			defer recoverCall(log, info.FullMethod, &err)
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, stream grpc.ServerStream, info *grpc.StreamServerInfo,
			handler grpc.StreamHandler) (err error) {
			defer recoverCall(log, info.FullMethod, &err)
			return handler(srv, stream)
		}),
	}
}

func recoverCall(log *slog.Logger, method string, err *error) {
	p := recover()
	if p == nil {
		return
	}
	log.Error("bug: a call panicked", "method", method, "panic", p, "stack", string(debug.Stack()))
	*err = status.Errorf(codes.Internal, "the nodedebug agent hit a bug in %s (%v); it logged the details", method, p)
}
