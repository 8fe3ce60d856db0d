package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// zeroCounter counts the bytes written to it and checks they are zeros.
type zeroCounter struct {
	n       int64
	nonZero bool
	zeroBuf [64 << 10]byte
}

func (c *zeroCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	for rest := p; len(rest) > 0 && !c.nonZero; {
		chunk := rest[:min(len(rest), len(c.zeroBuf))]
		c.nonZero = !bytes.Equal(chunk, c.zeroBuf[:len(chunk)])
		rest = rest[len(chunk):]
	}
	return len(p), nil
}

// mbps is throughput in MB/s (10^6 bytes per second).
func mbps(n int64, d time.Duration) float64 {
	return float64(n) / 1e6 / d.Seconds()
}

// streamer is one way of running a command with its output or input
// piped through.
type streamer struct {
	name  string
	agent *agentProcess // nil for the peer
	run   func(stdin io.Reader, stdout io.Writer, command ...string) sample
}

// streamers are both agents and crictl exec, in that order.
func (b *bench) streamers(ctx context.Context) []streamer {
	e := b.env
	via := func(a *agentProcess) streamer {
		return streamer{name: "nodedebug " + a.path, agent: a,
			run: func(in io.Reader, out io.Writer, command ...string) sample {
				return e.attachVia(ctx, a, in, out, command...)
			}}
	}
	return []streamer{via(e.agent), via(e.nsAgent), {name: "crictl exec",
		run: func(in io.Reader, out io.Writer, command ...string) sample {
			return e.crictlExec(ctx, in, out, command...)
		}}}
}

// streaming reads the same stdout through both agents and crictl exec,
// rotating which goes first.
func (b *bench) streaming(ctx context.Context) error {
	size := b.env.cfg.streamBytes
	command := []string{"head", "-c", strconv.FormatInt(size, 10), "/dev/zero"}
	runs := b.streamers(ctx)

	speeds := make([][]float64, len(runs))
	agentCPU := make([]time.Duration, len(runs))
	for i := range b.env.cfg.streamRuns {
		for j := range runs {
			k := (i + j) % len(runs)
			var counter zeroCounter
			s, cpu := runs[k].timed(func() sample { return runs[k].run(nil, &counter, command...) })
			if err := checkStream(s, &counter, size); err != nil {
				return fmt.Errorf("run %d of %s: %w", i, runs[k].name, err)
			}
			agentCPU[k] += cpu
			speeds[k] = append(speeds[k], mbps(size, s.wall))
		}
	}

	peer := median(speeds[len(runs)-1])
	gib := float64(size) * float64(b.env.cfg.streamRuns) / (1 << 30)
	for k, r := range runs[:len(runs)-1] {
		perGiB := agentCPU[k].Seconds() / gib
		b.report.Extra["stream_agent_cpu_seconds_per_gib_"+r.agent.path] = perGiB
		row := row{Metric: fmt.Sprintf("stdout %s %s, median of %d", r.agent.path, byteSize(size),
			len(speeds[k])), Unit: "MB/s", Ours: median(speeds[k]),
			Note: fmt.Sprintf("byte count exact and all zeros in every run; wall time includes "+
				"session start; agent CPU %.1f s per GiB", perGiB)}.withPeer("crictl exec", peer)
		b.add(row.judged(">= 2x crictl exec", *row.Ratio >= 2))
	}
	return nil
}

// timed runs f and returns the CPU time this streamer's agent used
// meanwhile; none for the peer.
func (s streamer) timed(f func() sample) (sample, time.Duration) {
	if s.agent == nil {
		return f(), 0
	}
	before, _ := processCPU(s.agent.pid())
	out := f()
	after, _ := processCPU(s.agent.pid())
	return out, after - before
}

func checkStream(s sample, c *zeroCounter, want int64) error {
	if s.err != nil {
		return s.err
	}
	if c.n != want {
		return fmt.Errorf("got %d bytes of stdout, want %d", c.n, want)
	}
	if c.nonZero {
		return fmt.Errorf("stdout holds bytes other than zero")
	}
	return nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// stdinData is a deterministic pseudo-random stream: the same 1 MiB block
// repeated, so it costs nothing to produce while timed.
func stdinData(size int64) io.Reader {
	block := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{'n', 'o', 'd', 'e', 'd', 'e', 'b', 'u', 'g'})
	_, _ = rng.Read(block)

	blocks := make([]io.Reader, 0, size>>20+1)
	for left := size; left > 0; left -= int64(len(block)) {
		blocks = append(blocks, bytes.NewReader(block[:min(left, int64(len(block)))]))
	}
	return io.MultiReader(blocks...)
}

func sha256Of(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// stdin pipes the same bytes into sha256sum through both agents and
// crictl exec -i and checks the sums.
func (b *bench) stdin(ctx context.Context) error {
	size := b.env.cfg.stdinBytes
	want, err := sha256Of(stdinData(size))
	if err != nil {
		return err
	}
	runs := b.streamers(ctx)

	speeds := make([][]float64, len(runs))
	for i := range b.env.cfg.streamRuns {
		for j := range runs {
			k := (i + j) % len(runs)
			s := runs[k].run(stdinData(size), nil, "sha256sum")
			if err := checkSum(s, want); err != nil {
				return fmt.Errorf("run %d of %s: %w", i, runs[k].name, err)
			}
			speeds[k] = append(speeds[k], mbps(size, s.wall))
		}
	}

	local := b.localSHA256(ctx, size)
	peer := median(speeds[len(runs)-1])
	for k, r := range runs[:len(runs)-1] {
		b.add(row{Metric: fmt.Sprintf("stdin %s %s sha256, median of %d", r.agent.path,
			byteSize(size), len(speeds[k])), Unit: "MB/s", Ours: median(speeds[k]),
			Note: fmt.Sprintf("sha256 matched in every run; busybox sha256sum alone on this host: "+
				"%.0f MB/s", local)}.withPeer("crictl exec -i", peer))
	}
	return nil
}

func checkSum(s sample, want string) error {
	if s.err != nil {
		return s.err
	}
	got, _, _ := strings.Cut(string(s.out), " ")
	if got != want {
		return fmt.Errorf("sha256 of stdin came back %q, want %s", got, want)
	}
	return nil
}

// localSHA256 is the speed of the same busybox sha256sum with no
// container or stream in between: the ceiling for the stdin row.
func (b *bench) localSHA256(ctx context.Context, size int64) float64 {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return 0
	}
	s := runCmd(ctx, stdinData(size), nil, busybox, "sha256sum")
	if s.err != nil {
		return 0
	}
	return mbps(size, s.wall)
}
