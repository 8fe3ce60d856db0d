package main

import (
	"context"
	"fmt"
	"time"
)

// warmups run before every timed series and are not counted.
const warmups = 2

// contender is one way of running `true` next to the target.
type contender struct {
	name string
	run  func(ctx context.Context, i int) sample
}

// The contenders, in the order contenders returns them.
const (
	byContainerd = iota
	byNsenter
	byCrictl
	byCtr
)

func (b *bench) contenders() []contender {
	e := b.env
	return []contender{
		byContainerd: {"nodedebug attach (containerd path)", func(ctx context.Context, _ int) sample {
			return e.attachVia(ctx, e.agent, nil, nil, "true")
		}},
		byNsenter: {"nodedebug attach (nsenter path)", func(ctx context.Context, _ int) sample {
			return e.attachVia(ctx, e.nsAgent, nil, nil, "true")
		}},
		byCrictl: {"crictl exec", func(ctx context.Context, _ int) sample {
			return e.crictlExec(ctx, nil, nil, "true")
		}},
		byCtr: {"ctr run --rm", func(ctx context.Context, i int) sample {
			return e.ctrRun(ctx, fmt.Sprintf("bench-ctr-%d", i+warmups), "true")
		}},
	}
}

// latency times `true` through each contender, interleaved: run i starts
// with contender i mod 4, so no tool always goes first.
func (b *bench) latency(ctx context.Context) error {
	cs := b.contenders()
	for i := range warmups {
		for _, c := range cs {
			if s := c.run(ctx, i-warmups); s.err != nil {
				return fmt.Errorf("warm-up %s: %w", c.name, s.err)
			}
		}
	}

	agents := []*agentProcess{b.env.agent, b.env.nsAgent}
	marks := make([]agentMark, len(agents))
	for i, a := range agents {
		var err error
		if marks[i], err = a.mark(); err != nil {
			return err
		}
	}
	samples, err := b.interleave(ctx, cs)
	if err != nil {
		return err
	}
	b.waitToolsRemoved(ctx)

	for i, a := range agents {
		cpu, timings, err := a.since(marks[i])
		if err != nil {
			return err
		}
		who := []int{byContainerd, byNsenter}[i]
		b.latencyRows(a.path, samples[who], samples, timings)
		b.cpuRows(a.path, samples[who], samples[byCrictl], cpu)
	}
	return nil
}

// agentMark is where an agent's CPU time and log stood before a series.
type agentMark struct {
	cpu    time.Duration
	offset int64
}

func (a *agentProcess) mark() (agentMark, error) {
	cpu, err := processCPU(a.pid())
	return agentMark{cpu: cpu, offset: a.logOffset()}, err
}

// since returns the CPU the agent used and the timing lines it logged
// after m.
func (a *agentProcess) since(m agentMark) (time.Duration, []timing, error) {
	cpu, err := processCPU(a.pid())
	if err != nil {
		return 0, nil, err
	}
	timings, err := a.timingsSince(m.offset)
	return cpu - m.cpu, timings, err
}

func (b *bench) interleave(ctx context.Context, cs []contender) ([][]sample, error) {
	samples := make([][]sample, len(cs))
	for i := range b.env.cfg.runs {
		for j := range cs {
			k := (i + j) % len(cs)
			s := cs[k].run(ctx, i)
			if s.err != nil {
				return nil, fmt.Errorf("run %d of %s: %w", i, cs[k].name, s.err)
			}
			samples[k] = append(samples[k], s)
		}
	}
	return samples, nil
}

// latencyRows compares one agent's attaches, ours, with the peers in all.
func (b *bench) latencyRows(path string, ours []sample, all [][]sample, timings []timing) {
	mine, crictl, ctr := walls(ours), walls(all[byCrictl]), walls(all[byCtr])
	name := fmt.Sprintf("attach %s p%%d (n=%d)", path, len(mine))

	p50 := row{Metric: fmt.Sprintf(name, 50), Unit: "ms", Ours: median(mine)}.
		withPeer("ctr run --rm", median(ctr))
	b.add(p50.judged("<= 1.2x ctr run", *p50.Ratio <= 1.2))
	b.add(row{Metric: fmt.Sprintf(name, 95), Unit: "ms", Ours: percentile(mine, 95)}.
		withPeer("ctr run --rm", percentile(ctr, 95)))
	b.add(row{Metric: fmt.Sprintf("attach %s p50 vs exec", path), Unit: "ms", Ours: median(mine),
		Note: "crictl exec starts a process in the running container; no container is created"}.
		withPeer("crictl exec", median(crictl)))
	b.add(row{Metric: fmt.Sprintf("attach %s p95 vs exec", path), Unit: "ms",
		Ours: percentile(mine, 95)}.withPeer("crictl exec", percentile(crictl, 95)))

	b.report.Profiles[path] = profile(timings)
	b.report.Extra["baseline_resolve_p50_ms_"+path] = median(field(timings, "resolve"))
}

// stepNames are the agent's timing steps in the order they happen.
// The containerd path marks image to task_create, the nsenter path
// prepare and fork_and_enter.
var stepNames = []string{"resolve", "image", "snapshot_rootfs", "container_create",
	"task_create", "prepare", "fork_and_enter", "check_and_started", "task_start", "run",
	"drain", "total"}

func profile(timings []timing) []step {
	var steps []step
	for _, name := range stepNames {
		if values := field(timings, name); len(values) > 0 {
			steps = append(steps, step{Name: name, MedianMs: median(values)})
		}
	}
	return steps
}

// waitToolsRemoved waits, within a bound, until the agent has removed
// every tool container: it does that after the client has its exit status.
func (b *bench) waitToolsRemoved(ctx context.Context) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n, err := b.env.toolContainers(ctx); err == nil && n == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
