// Command bench measures nodedebug against its peers on one private
// containerd: attach latency next to `crictl exec` and a bare `ctr run`,
// stdout and stdin throughput, the agent's memory and CPU, concurrent
// sessions, and target lookup among many pod sandboxes. It prints a table
// and writes the same figures as JSON.
//
// It needs root, containerd, runc, crictl and ctr (test/install-deps.sh).
// Every measurement that has a peer runs interleaved with it, so shared
// machines slow both alike.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// config is the benchmark's flags.
type config struct {
	runs        int
	concurrent  int
	rssSessions int
	sandboxes   int
	streamBytes int64
	stdinBytes  int64
	streamRuns  int
	clusterRuns int
	out         string
	containerd  string
	ctr         string
	crictl      string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := parseFlags()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	started := time.Now()
	e, err := newEnv(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer e.stop()

	b := &bench{env: e, log: log, report: &report{Config: cfg.describe(),
		Profiles: map[string][]step{}, Extra: map[string]float64{}}}
	b.report.Machine = describeMachine(e.containerd.Version)
	b.runAll(ctx)
	b.report.Extra["total_seconds"] = time.Since(started).Seconds()

	if err := b.report.writeTable(os.Stdout); err != nil {
		return err
	}
	if err := b.report.writeJSON(cfg.out); err != nil {
		return err
	}
	if len(b.report.Errors) > 0 {
		return fmt.Errorf("%d measurements failed", len(b.report.Errors))
	}
	return nil
}

func parseFlags() (config, error) {
	var cfg config
	flag.IntVar(&cfg.runs, "runs", 30, "attach latency runs per tool")
	flag.IntVar(&cfg.concurrent, "concurrent", 50, "sessions started at once")
	flag.IntVar(&cfg.rssSessions, "rss-sessions", 20, "concurrent sessions while agent RSS is sampled")
	flag.IntVar(&cfg.sandboxes, "sandboxes", 500, "pod sandboxes on the node for the lookup row")
	flag.Int64Var(&cfg.streamBytes, "stream-bytes", 1<<30, "bytes of stdout per streaming run")
	flag.Int64Var(&cfg.stdinBytes, "stdin-bytes", 256<<20, "bytes of stdin per stdin run")
	flag.IntVar(&cfg.streamRuns, "stream-runs", 3, "streaming and stdin runs per tool")
	flag.IntVar(&cfg.clusterRuns, "cluster-runs", 10, "runs per tool through the API server (each kubectl debug adds an ephemeral container)")
	flag.StringVar(&cfg.out, "out", "bench-results.json", "JSON report path")
	flag.StringVar(&cfg.containerd, "containerd", os.Getenv("NODEDEBUG_CONTAINERD"),
		"containerd binary (default: the v2.4.2 from install-deps.sh, else PATH)")
	flag.StringVar(&cfg.ctr, "ctr", "", "ctr binary (default: next to containerd, else PATH)")
	flag.StringVar(&cfg.crictl, "crictl", "", "crictl binary (default: PATH, else install-deps.sh's)")
	flag.Parse()

	if cfg.runs < 1 || cfg.concurrent < 1 || cfg.streamRuns < 1 || cfg.rssSessions < 1 || cfg.clusterRuns < 1 {
		return cfg, errors.New("-runs, -concurrent, -rss-sessions, -stream-runs and -cluster-runs must be at least 1")
	}
	if os.Geteuid() != 0 {
		return cfg, errors.New("needs root to run containerd; try sudo make bench")
	}
	return cfg, cfg.findTools()
}

// installed is where test/install-deps.sh puts its tools.
const installed = "/opt/nodedebug-test"

func (c *config) findTools() error {
	var err error
	if c.containerd == "" {
		c.containerd = firstFound(installed+"/containerd-v2.4.2/bin/containerd", "containerd")
	}
	if c.containerd, err = exec.LookPath(c.containerd); err != nil {
		return fmt.Errorf("containerd: %w (run test/install-deps.sh)", err)
	}
	if c.ctr == "" {
		c.ctr = firstFound(filepath.Join(filepath.Dir(c.containerd), "ctr"), "ctr")
	}
	if c.ctr, err = exec.LookPath(c.ctr); err != nil {
		return fmt.Errorf("ctr: %w", err)
	}
	if c.crictl == "" {
		c.crictl = firstFound("crictl", installed+"/bin/crictl")
	}
	if c.crictl, err = exec.LookPath(c.crictl); err != nil {
		return fmt.Errorf("crictl: %w", err)
	}
	return nil
}

// firstFound returns the first candidate that resolves to a program.
func firstFound(candidates ...string) string {
	for _, c := range candidates {
		if path, err := exec.LookPath(c); err == nil {
			return path
		}
	}
	return candidates[len(candidates)-1]
}

func (c config) describe() map[string]any {
	return map[string]any{
		"runs": c.runs, "concurrent": c.concurrent, "rss_sessions": c.rssSessions,
		"sandboxes": c.sandboxes, "stream_bytes": c.streamBytes, "stdin_bytes": c.stdinBytes,
		"stream_runs": c.streamRuns, "cluster_runs": c.clusterRuns, "containerd": c.containerd, "ctr": c.ctr, "crictl": c.crictl,
	}
}

// bench runs the measurements in order and collects their rows.
type bench struct {
	env    *env
	log    *slog.Logger
	report *report
}

func (b *bench) runAll(ctx context.Context) {
	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		{"idle memory", b.idleMemory},
		{"attach latency", b.latency},
		// Before streaming, whose large buffers the agent's heap keeps
		// for a while afterwards.
		{"agent memory under load", b.loadedMemory},
		{"stdout streaming", b.streaming},
		{"stdin", b.stdin},
		{"memory after streaming", b.memoryAfterStreaming},
		{"concurrency", b.concurrency},
		{"lookup", b.lookup},
		{"cluster attach latency", b.clusterLatency},
	}
	for _, p := range phases {
		if ctx.Err() != nil {
			b.fail(p.name, ctx.Err())
			continue
		}
		b.log.Info("measuring", "phase", p.name)
		started := time.Now()
		if err := p.run(ctx); err != nil {
			b.fail(p.name, err)
		}
		b.log.Info("measured", "phase", p.name, "took", time.Since(started).Round(time.Millisecond))
	}
}

func (b *bench) fail(phase string, err error) {
	b.log.Error("measurement failed", "phase", phase, "error", err)
	b.report.Errors = append(b.report.Errors, fmt.Sprintf("%s: %v", phase, err))
}

func (b *bench) add(r row) {
	b.report.Rows = append(b.report.Rows, r)
}
