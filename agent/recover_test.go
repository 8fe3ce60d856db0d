package agent

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRecoverCallsTurnsAPanicIntoAnError(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	_, err := func() (resp any, err error) {
		defer recoverCall(log, "/nodedebug.v1.Agent/Attach", &err)
		var target map[string]int
		target["boom"] = 1 // a nil map write panics
		return nil, nil
	}()

	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "Attach") {
		t.Fatalf("err = %v, want an Internal error naming the method", err)
	}
}

func TestRecoverCallsLeavesNormalResultsAlone(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	unary := recoverCalls(log)
	if len(unary) != 2 {
		t.Fatalf("want a unary and a stream interceptor, got %d options", len(unary))
	}

	_, err := func() (resp any, err error) {
		defer recoverCall(log, "/x", &err)
		return "ok", status.Error(codes.NotFound, "pod web/api not found")
	}()
	if status.Code(err) != codes.NotFound {
		t.Fatalf("err = %v, want the handler's own error", err)
	}
}
