package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// buffer is a channel of the websocket that only records writes.
type buffer struct{ bytes.Buffer }

func (*buffer) Close() error { return nil }

func TestFinishWritesKubeletsStatus(t *testing.T) {
	tests := []struct {
		name string
		code int32
		err  error
		want metav1.Status
	}{
		{name: "success", want: metav1.Status{Status: metav1.StatusSuccess}},
		{
			name: "exit code",
			code: 5,
			want: metav1.Status{
				Status: metav1.StatusFailure, Reason: "NonZeroExitCode",
				Message: "command terminated with exit code 5",
				Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: "5"}}},
			},
		},
		{
			name: "agent refused",
			err:  status.Error(codes.NotFound, "pod shop/web not found"),
			want: metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound,
				Message: "pod shop/web not found"},
		},
		{
			name: "other failure",
			err:  errors.New("send start to agent: broken"),
			want: metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError,
				Message: "send start to agent: broken"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams := make([]io.ReadWriteCloser, 5)
			for i := range streams {
				streams[i] = &buffer{}
			}
			s := &bridgeSession{streams: streams, log: slog.New(slog.DiscardHandler)}

			s.finish(tt.code, tt.err)

			var got metav1.Status
			if err := json.Unmarshal(streams[errorChannel].(*buffer).Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}
