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

func (b *bench) contenders() []contender {
	e := b.env
	return []contender{
		{"nodedebug attach", func(ctx context.Context, _ int) sample {
			return e.attach(ctx, nil, nil, "true")
		}},
		{"crictl exec", func(ctx context.Context, _ int) sample {
			return e.crictlExec(ctx, nil, nil, "true")
		}},
		{"ctr run --rm", func(ctx context.Context, i int) sample {
			return e.ctrRun(ctx, fmt.Sprintf("bench-ctr-%d", i+warmups), "true")
		}},
	}
}

// latency times `true` through each contender, interleaved: run i starts
// with contender i mod 3, so no tool always goes first.
func (b *bench) latency(ctx context.Context) error {
	cs := b.contenders()
	for i := range warmups {
		for _, c := range cs {
			if s := c.run(ctx, i-warmups); s.err != nil {
				return fmt.Errorf("warm-up %s: %w", c.name, s.err)
			}
		}
	}

	offset := b.env.agent.logOffset()
	cpuBefore, err := processCPU(b.env.agent.pid())
	if err != nil {
		return err
	}
	samples, err := b.interleave(ctx, cs)
	if err != nil {
		return err
	}
	b.waitToolsRemoved(ctx)
	cpuAfter, err := processCPU(b.env.agent.pid())
	if err != nil {
		return err
	}

	timings, err := b.env.agent.timingsSince(offset)
	if err != nil {
		return err
	}
	b.latencyRows(samples, timings)
	b.cpuRows(samples, cpuAfter-cpuBefore)
	return nil
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

func (b *bench) latencyRows(samples [][]sample, timings []timing) {
	ours, crictl, ctr := walls(samples[0]), walls(samples[1]), walls(samples[2])
	n := fmt.Sprintf(" (n=%d)", len(ours))

	p50 := row{Metric: "attach latency p50" + n, Unit: "ms", Ours: median(ours)}.
		withPeer("ctr run --rm", median(ctr))
	b.add(p50.judged("<= 1.2x ctr run", *p50.Ratio <= 1.2))
	b.add(row{Metric: "attach latency p95" + n, Unit: "ms", Ours: percentile(ours, 95)}.
		withPeer("ctr run --rm", percentile(ctr, 95)))
	b.add(row{Metric: "attach latency p50 vs exec", Unit: "ms", Ours: median(ours),
		Note: "crictl exec starts a process in the running container; no container is created"}.
		withPeer("crictl exec", median(crictl)))
	b.add(row{Metric: "attach latency p95 vs exec", Unit: "ms", Ours: percentile(ours, 95)}.
		withPeer("crictl exec", percentile(crictl, 95)))

	b.report.Profile = profile(timings)
	b.report.Extra["baseline_resolve_p50_ms"] = median(field(timings, "resolve"))
}

// stepNames are the agent's timing steps in the order they happen.
var stepNames = []string{"resolve", "image", "snapshot_rootfs", "container_create",
	"task_create", "check_and_started", "task_start", "run", "drain", "total"}

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
