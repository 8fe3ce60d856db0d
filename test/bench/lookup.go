package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nodedebug/nodedebug/test/harness"
)

// fillerNamespace holds the pause-only sandboxes of the lookup row.
const fillerNamespace = "bench-filler"

// lookup fills the node with pause-only host-network sandboxes, then reads
// the agent's resolve step for attaches to the real target among them.
// Resolve is everything the agent asks CRI to find the target: list
// sandboxes by label, list the pod's containers, read the container's
// verbose status.
func (b *bench) lookup(ctx context.Context) error {
	n := b.env.cfg.sandboxes
	started := time.Now()
	pods, err := b.fill(ctx, n)
	defer b.empty(pods)
	if err != nil {
		return err
	}
	b.log.Info("sandboxes ready", "count", len(pods), "took", time.Since(started).Round(time.Second))

	runs := min(b.env.cfg.runs, 30)
	offset := b.env.agent.logOffset()
	var notFound []sample
	for range runs {
		if s := b.env.attach(ctx, nil, nil, "true"); s.err != nil {
			return fmt.Errorf("attach among %d sandboxes: %w", n, s.err)
		}
		args := b.env.attachArgs("target/missing", false, "true")
		notFound = append(notFound, runCmd(ctx, nil, nil, b.env.binary, args...))
	}

	timings, err := b.env.agent.timingsSince(offset)
	if err != nil {
		return err
	}
	b.lookupRows(n, timings, notFound)
	return nil
}

func (b *bench) lookupRows(n int, timings []timing, notFound []sample) {
	resolve := field(started(timings), "resolve")
	p50 := median(resolve)
	b.add(row{Metric: fmt.Sprintf("lookup among %d sandboxes p50 (n=%d)", n, len(resolve)),
		Unit: "ms", Ours: p50,
		Note: "agent's resolve step (CRI list sandboxes, list containers, container status); " +
			"peer is the same step with only the target pod"}.
		withPeer("1 pod", b.report.Extra["baseline_resolve_p50_ms_"+b.env.agent.path]).
		judged("<= 50 ms", p50 <= 50))

	b.add(row{Metric: fmt.Sprintf("attach to a missing container among %d, p50", n),
		Unit: "ms", Ours: median(walls(notFound)),
		Note: "whole CLI run ending in 'container not found': process start, dial, resolve, error"})
}

// fill creates n pause-only host-network pods through CRI, four at a time.
func (b *bench) fill(ctx context.Context, n int) ([]*harness.Pod, error) {
	var (
		mu    sync.Mutex
		pods  []*harness.Pod
		first error
		wg    sync.WaitGroup
	)
	names := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range names {
				pod, err := b.env.containerd.RunPod(ctx, harness.PodSpec{
					Namespace: fillerNamespace, Name: fmt.Sprintf("filler-%d", i), HostNetwork: true,
				})
				mu.Lock()
				if pod != nil {
					pods = append(pods, pod)
				}
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		names <- i
	}
	close(names)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return pods, first
}

// empty removes the filler pods on a fresh context, four at a time.
func (b *bench) empty(pods []*harness.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	work := make(chan *harness.Pod)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pod := range work {
				if err := b.env.containerd.RemovePod(ctx, pod); err != nil {
					b.log.Warn("remove filler pod", "pod", pod.SandboxID, "error", err)
				}
			}
		}()
	}
	for _, pod := range pods {
		work <- pod
	}
	close(work)
	wg.Wait()
}

// started keeps the sessions that got as far as starting their tool, so a
// failed lookup's shorter path does not flatter the figure.
func started(timings []timing) []timing {
	var out []timing
	for _, t := range timings {
		if _, ok := t["task_start"]; ok {
			out = append(out, t)
		}
	}
	return out
}
