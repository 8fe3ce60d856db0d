package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat times on Linux.
const clockTick = 100

// processCPU is the user plus system CPU time a process has used.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of pid %d: %w", pid, err)
	}
	// The command name may hold spaces; fields count from after it.
	_, rest, _ := strings.Cut(string(data), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// rssMiB is a process's resident set size.
func rssMiB(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	var kb float64
	fmt.Sscan(strings.TrimSuffix(procField(string(data), "VmRSS"), " kB"), &kb)
	return kb / 1024, nil
}

// idleMemory reads the agent's RSS after start, once it has imported the
// toolbox and settled.
func (b *bench) idleMemory(ctx context.Context) error {
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, a := range []*agentProcess{b.env.agent, b.env.nsAgent} {
		rss, err := rssMiB(a.pid())
		if err != nil {
			return err
		}
		anon, file := rssSplitMiB(a.pid())
		b.add(row{Metric: "agent RSS idle, " + a.path, Unit: "MiB", Ours: rss,
			Note: fmt.Sprintf("VmRSS after start and toolbox import, before any session: "+
				"%.1f MiB anonymous, %.1f MiB file-backed (the binary's own pages)", anon, file)}.
			judged("<= 25 MiB", rss <= 25))
	}
	return nil
}

// memoryAfterStreaming reads both agents' RSS once the streaming runs are
// over: Go returns freed heap to the system only gradually.
func (b *bench) memoryAfterStreaming(context.Context) error {
	for _, a := range []*agentProcess{b.env.agent, b.env.nsAgent} {
		rss, err := rssMiB(a.pid())
		if err != nil {
			return err
		}
		anon, _ := rssSplitMiB(a.pid())
		b.add(row{Metric: "agent RSS after streaming, " + a.path, Unit: "MiB", Ours: rss,
			Note: fmt.Sprintf("VmRSS right after the stdout and stdin runs, %.1f MiB anonymous; "+
				"idle sessions no longer hold it", anon)})
	}
	return nil
}

// rssSplitMiB is a process's anonymous and file-backed resident memory.
func rssSplitMiB(pid int) (anon, file float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	fmt.Sscan(strings.TrimSuffix(procField(string(data), "RssAnon"), " kB"), &anon)
	fmt.Sscan(strings.TrimSuffix(procField(string(data), "RssFile"), " kB"), &file)
	return anon / 1024, file / 1024
}

// cpuRows reports one agent's CPU and its client's over the latency runs.
func (b *bench) cpuRows(path string, ours, crictl []sample, agentCPU time.Duration) {
	n := float64(len(ours))
	b.add(row{Metric: fmt.Sprintf("agent CPU per session, %s", path), Unit: "ms",
		Ours: ms(agentCPU) / n,
		Note: "agent process only, over the latency runs, cleanup included; " +
			"containerd, shim and runc CPU are not counted"})

	cli := func(ss []sample) float64 {
		var total time.Duration
		for _, s := range ss {
			total += s.cpu
		}
		return ms(total) / float64(len(ss))
	}
	b.add(row{Metric: fmt.Sprintf("client CPU per session, %s", path), Unit: "ms",
		Ours: cli(ours)}.withPeer("crictl exec", cli(crictl)))
}

// loadedMemory samples the agent's RSS while sessions run at once and
// reports the peak.
func (b *bench) loadedMemory(ctx context.Context) error {
	n := b.env.cfg.rssSessions
	done := make(chan []sample, 1)
	go func() { done <- b.parallel(ctx, n, "sleep", "10") }()

	peak, live, err := b.samplePeak(ctx, done)
	if err != nil {
		return err
	}
	samples := <-done
	if failed := failures(samples); failed > 0 {
		return fmt.Errorf("%d of %d sessions failed: %v", failed, n, firstErr(samples))
	}
	anon, file := rssSplitMiB(b.env.agent.pid())
	b.add(row{Metric: fmt.Sprintf("agent RSS, %d sessions", n), Unit: "MiB", Ours: peak,
		Note: fmt.Sprintf("peak VmRSS; at most %d tool containers were live at once; "+
			"after the sessions %.1f MiB anonymous, %.1f MiB file-backed", live, anon, file)})
	return nil
}

// samplePeak polls agent RSS and the live tool container count every
// 100 ms until done is ready; done is left for the caller to read.
func (b *bench) samplePeak(ctx context.Context, done chan []sample) (float64, int, error) {
	var peak float64
	var live int
	for {
		rss, err := rssMiB(b.env.agent.pid())
		if err != nil {
			return 0, 0, err
		}
		peak = max(peak, rss)
		if n, err := b.env.toolContainers(ctx); err == nil {
			live = max(live, n)
		}

		select {
		case s := <-done:
			done <- s
			return peak, live, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// parallel starts n attach sessions at the same instant.
func (b *bench) parallel(ctx context.Context, n int, command ...string) []sample {
	return runParallel(n, func() sample { return b.env.attach(ctx, nil, nil, command...) })
}

func runParallel(n int, run func() sample) []sample {
	samples := make([]sample, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			samples[i] = run()
		}()
	}
	close(start)
	wg.Wait()
	return samples
}

func failures(samples []sample) int {
	n := 0
	for _, s := range samples {
		if s.err != nil {
			n++
		}
	}
	return n
}

func firstErr(samples []sample) error {
	for _, s := range samples {
		if s.err != nil {
			return s.err
		}
	}
	return nil
}

// concurrency starts many sessions at once, then as many crictl execs.
func (b *bench) concurrency(ctx context.Context) error {
	n := b.env.cfg.concurrent
	ours := b.parallel(ctx, n, "true")
	b.waitToolsRemoved(ctx)
	peer := runParallel(n, func() sample { return b.env.crictlExec(ctx, nil, nil, "true") })

	failed := failures(ours)
	b.add(row{Metric: fmt.Sprintf("%d concurrent sessions: failures", n), Unit: "", Ours: float64(failed)}.
		withPeer("crictl exec", float64(failures(peer))).judged("0", failed == 0))
	b.add(row{Metric: fmt.Sprintf("%d concurrent sessions: p95", n), Unit: "ms",
		Ours: percentile(walls(ours), 95)}.withPeer("crictl exec", percentile(walls(peer), 95)))
	if failed > 0 {
		return fmt.Errorf("%d of %d concurrent sessions failed, first: %w", failed, n, firstErr(ours))
	}
	return nil
}

// toolContainers counts the containers in the agent's namespace.
func (e *env) toolContainers(ctx context.Context) (int, error) {
	client, err := e.containerd.NewClient("nodedebug")
	if err != nil {
		return 0, err
	}
	defer client.Close()

	list, err := client.Containers(namespaces.WithNamespace(ctx, "nodedebug"))
	if err != nil {
		return 0, fmt.Errorf("list tool containers: %w", err)
	}
	return len(list), nil
}
