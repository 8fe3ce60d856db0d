package harness

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// EnvContainerd names the containerd binary e2e tests run; default is
// containerd on PATH.
const EnvContainerd = "NODEDEBUG_CONTAINERD"

// EnvRuntime names the OCI runtime (runc or crun) Start uses when Options
// leave it empty; default is runc on PATH.
const EnvRuntime = "NODEDEBUG_RUNTIME"

// RequireContainerd returns the containerd binary for e2e tests. When the
// test cannot run here (not root, no containerd) it skips with the reason,
// except under CI=true, where a missing prerequisite is a failure.
func RequireContainerd(tb testing.TB) string {
	tb.Helper()
	missing := func(format string, args ...any) {
		tb.Helper()
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true but "+format, args...)
		}
		tb.Skipf(format, args...)
	}

	if os.Geteuid() != 0 {
		missing("e2e test needs root to run containerd and mount overlayfs")
	}
	name := os.Getenv(EnvContainerd)
	if name == "" {
		name = "containerd"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		missing("no containerd binary (%s=%q): %v", EnvContainerd, name, err)
	}
	return path
}

// Start starts a containerd for the test and stops it in t.Cleanup.
func Start(tb testing.TB, ctx context.Context, opts Options) *Containerd {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir() + "/containerd"
	}
	if opts.Logger == nil {
		opts.Logger = TestLogger(tb)
	}
	if opts.Runtime == "" {
		opts.Runtime = os.Getenv(EnvRuntime)
	}

	c, err := StartContainerd(ctx, opts)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Log(c.LogProblems())
		}
		if err := c.Stop(); err != nil {
			tb.Errorf("stop containerd: %v", err)
		}
	})
	if err != nil {
		tb.Fatalf("start containerd: %v", err)
	}
	return c
}

// TestLogger sends slog output to tb.Log, so it shows up with the test.
func TestLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
