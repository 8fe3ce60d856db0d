package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrNoCrictl means crictl is not on PATH; callers usually skip.
var ErrNoCrictl = errors.New("crictl not found on PATH")

// Crictl runs crictl against this daemon and returns its stdout. It is a
// debugging aid for tests, never needed by the harness itself.
func (c *Containerd) Crictl(ctx context.Context, args ...string) ([]byte, error) {
	path, err := exec.LookPath("crictl")
	if err != nil {
		return nil, ErrNoCrictl
	}

	endpoint := "unix://" + c.Socket
	full := append([]string{"--runtime-endpoint", endpoint, "--image-endpoint", endpoint}, args...)
	cmd := exec.CommandContext(ctx, path, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("crictl %s: %w: %s",
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
