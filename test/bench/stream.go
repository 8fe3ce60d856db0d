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

// streaming reads the same stdout through nodedebug and crictl exec,
// alternating which goes first.
func (b *bench) streaming(ctx context.Context) error {
	size := b.env.cfg.streamBytes
	command := []string{"head", "-c", strconv.FormatInt(size, 10), "/dev/zero"}
	runs := []func(io.Writer) sample{
		func(w io.Writer) sample { return b.env.attach(ctx, nil, w, command...) },
		func(w io.Writer) sample { return b.env.crictlExec(ctx, nil, w, command...) },
	}

	speeds := make([][]float64, len(runs))
	var agentCPU time.Duration
	for i := range b.env.cfg.streamRuns {
		for j := range runs {
			k := (i + j) % len(runs)
			var counter zeroCounter
			before, _ := processCPU(b.env.agent.pid())
			s := runs[k](&counter)
			if k == 0 {
				after, _ := processCPU(b.env.agent.pid())
				agentCPU += after - before
			}
			if err := checkStream(s, &counter, size); err != nil {
				return fmt.Errorf("run %d of %s: %w", i, []string{"nodedebug", "crictl"}[k], err)
			}
			speeds[k] = append(speeds[k], mbps(size, s.wall))
		}
	}

	gib := float64(size) * float64(len(speeds[0])) / (1 << 30)
	b.report.Extra["stream_agent_cpu_seconds_per_gib"] = agentCPU.Seconds() / gib
	ours := median(speeds[0])
	r := row{Metric: fmt.Sprintf("stdout %s, median of %d", byteSize(size), len(speeds[0])),
		Unit: "MB/s", Ours: ours, Note: fmt.Sprintf("byte count exact and all zeros in every run; wall time includes "+
			"session start; agent CPU %.1f s per GiB", agentCPU.Seconds()/gib)}.withPeer("crictl exec", median(speeds[1]))
	b.add(r.judged(">= 2x crictl exec", *r.Ratio >= 2))
	return nil
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

// stdin pipes the same bytes into sha256sum through nodedebug and crictl
// exec -i and checks the sums.
func (b *bench) stdin(ctx context.Context) error {
	size := b.env.cfg.stdinBytes
	want, err := sha256Of(stdinData(size))
	if err != nil {
		return err
	}
	runs := []func() sample{
		func() sample { return b.env.attach(ctx, stdinData(size), nil, "sha256sum") },
		func() sample { return b.env.crictlExec(ctx, stdinData(size), nil, "sha256sum") },
	}

	speeds := make([][]float64, len(runs))
	for i := range b.env.cfg.streamRuns {
		for j := range runs {
			k := (i + j) % len(runs)
			s := runs[k]()
			if err := checkSum(s, want); err != nil {
				return fmt.Errorf("run %d of %s: %w", i, []string{"nodedebug", "crictl"}[k], err)
			}
			speeds[k] = append(speeds[k], mbps(size, s.wall))
		}
	}

	b.add(row{Metric: fmt.Sprintf("stdin %s sha256, median of %d", byteSize(size), len(speeds[0])),
		Unit: "MB/s", Ours: median(speeds[0]),
		Note: fmt.Sprintf("sha256 matched in every run; busybox sha256sum alone on this host: %.0f MB/s",
			b.localSHA256(ctx, size))}.withPeer("crictl exec -i", median(speeds[1])))
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
